"""scripts/check-imports.py on a small package: it names each undeclared import and each unused dependency,
reads only real imports (not comments or strings), and passes once Package.swift matches the imports."""
import subprocess
import sys

from conftest import ROOT

MANIFEST = """// swift-tools-version:6.0
import PackageDescription
let package = Package(name: "P", targets: [
    .target(name: "A"),
    .target(name: "B", dependencies: [%s]),
    .target(name: "C", dependencies: [%s]),
    .target(name: "CHeader"),
    .target(name: "CUser", dependencies: [%s]),
    .testTarget(name: "CTests", dependencies: ["C"]),
])
"""

SOURCES = {
    "Sources/A/a.swift": "public let a = 1\n",
    # Imports only in a comment and a string: B uses nothing from A.
    "Sources/B/b.swift": 'import Foundation\n// import A\nlet s = """\nimport A\n"""\npublic let b = 2\n',
    "Sources/C/c.swift": "import B\n@preconcurrency import struct A.Never\npublic let c = b\n",
    "Sources/CHeader/include/cheader.h": "int cheader(void);\n",
    "Sources/CHeader/cheader.c": '#include "cheader.h"\nint cheader(void) { return 1; }\n',
    "Sources/CUser/user.c": '#include "cheader.h"\nint user(void) { return cheader(); }\n',
    "Tests/CTests/c_tests.swift": "import XCTest\n@testable import C\n",
}


def check(package):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "check-imports.py"), "--package-path", str(package)],
                          capture_output=True, text=True, timeout=300)


def test_names_undeclared_imports_and_unused_dependencies_then_passes(tmp_path):
    for path, text in SOURCES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    (tmp_path / "Package.swift").write_text(MANIFEST % ('"A"', '"B"', ""))
    r = check(tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    *problems, summary = r.stderr.splitlines()
    assert summary.startswith("check-imports: 3 problem(s)"), r.stderr
    assert sorted(problems) == [
        'check-imports: B: declares "A" but imports none of A',
        "check-imports: C: imports A (Sources/C/c.swift) but does not declare it",
        "check-imports: CUser: imports CHeader (Sources/CUser/user.c) but does not declare it",
    ], r.stderr

    (tmp_path / "Package.swift").write_text(MANIFEST % ("", '"A", "B"', '"CHeader"'))
    r = check(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "6 targets declare exactly what they import" in r.stdout
