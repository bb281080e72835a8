#!/usr/bin/env python3
"""Checks that Package.swift declares exactly what each target imports.

For every target (test targets included) it reads the `import` lines of its Swift sources and the
`#include`s of its C sources, and fails when
  - a target imports a module that none of its declared dependencies (targets or products) provides:
    it compiles today only because another target brought the module onto the search path, or
  - a target declares a dependency that none of its sources imports.

Why a static check rather than `swift build --target X` per target: in one shared .build the modules
of earlier targets stay on the search path, so an undeclared import still compiles there; and a build
cannot see an unused dependency at all. Reading the sources is exact for both and takes seconds.

Usage: scripts/check-imports.py [--package-path DIR] [--scratch-path DIR]
Products of package dependencies are mapped to their modules by reading the manifests of the
checkouts in the scratch path (.build by default), so run it after `swift build` or `swift package resolve`.
Exit status: 0 when clean, 1 on violations, 2 when the package cannot be read.
"""

import argparse
import json
import os
import re
import subprocess
import sys

# Modules of the toolchain and the operating system: no package declares them.
SYSTEM_MODULES = {
    "Swift", "_Concurrency", "_StringProcessing", "Synchronization", "RegexBuilder", "Observation", "Distributed",
    "Foundation", "FoundationEssentials", "FoundationInternationalization", "FoundationNetworking", "FoundationXML",
    "CoreFoundation", "Dispatch", "XCTest", "Testing",
    "Glibc", "Musl", "Bionic", "Android", "Darwin", "os", "ObjectiveC", "ucrt", "WinSDK", "WASILibc",
    "Cxx", "CxxStdlib",
}

SWIFT_IMPORT = re.compile(
    r"^\s*(?:@[A-Za-z_]\w*(?:\([^)]*\))?\s+)*"  # @testable, @_exported, @preconcurrency, @_implementationOnly
    r"(?:(?:public|package|internal|fileprivate|private)\s+)?"  # access-level imports (SE-0409)
    r"(?:@[A-Za-z_]\w*\s+)*"
    r"import\s+(?:(?:typealias|struct|class|enum|protocol|let|var|func)\s+)?"
    r"([A-Za-z_]\w*)",  # `import NIOCore.Foo` and `import struct NIOCore.Foo` import NIOCore
    re.MULTILINE,
)
C_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.MULTILINE)


def strip_swift_comments_and_strings(text):
    """Blanks comments and string literals so that `import` inside them is not read as an import.

    `#if canImport(X)` blocks are kept: an import under any `#if` compiles on some platform, so it must be
    declared there; the toolchain modules such blocks usually choose between are in SYSTEM_MODULES.
    """
    out = []
    i, n = 0, len(text)
    depth = 0  # nesting of /* */ comments (Swift allows nesting)
    while i < n:
        if depth:
            if text.startswith("/*", i):
                depth += 1; i += 2
            elif text.startswith("*/", i):
                depth -= 1; i += 2
            else:
                out.append("\n" if text[i] == "\n" else " "); i += 1
        elif text.startswith("/*", i):
            depth = 1; i += 2
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith('"""', i) or (text[i] == "#" and re.match(r'#+"""', text[i:])):
            hashes = len(re.match(r"#*", text[i:]).group(0))
            close = '"""' + "#" * hashes
            j = text.find(close, i + hashes + 3)
            j = n if j < 0 else j + len(close)
            out.append(re.sub(r"[^\n]", " ", text[i:j])); i = j
        elif text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"' and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(" " * (min(j + 1, n) - i)); i = j + 1
        else:
            out.append(text[i]); i += 1
    return "".join(out)


def fail(message):
    print(f"check-imports: {message}", file=sys.stderr)
    sys.exit(2)


def c99_name(name):
    """SwiftPM's module name for a target name (`pagoda-model-bench` is module `pagoda_model_bench`)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def dump_package(path):
    try:
        out = subprocess.run(["swift", "package", "dump-package", "--package-path", path],
                             check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        fail(f"cannot read the manifest of {path}: {detail.strip()}")
    return json.loads(out)


def target_dir(package_path, target):
    if target.get("path"):
        return os.path.join(package_path, target["path"])
    return os.path.join(package_path, "Tests" if target["type"] == "test" else "Sources", target["name"])


def source_files(package_path, target):
    root = target_dir(package_path, target)
    excluded = [os.path.normpath(os.path.join(root, e)) for e in target.get("exclude", [])]
    roots = [os.path.join(root, s) for s in target["sources"]] if target.get("sources") else [root]
    for r in roots:
        if os.path.isfile(r):
            yield r
            continue
        for dirpath, dirnames, filenames in os.walk(r):
            dirnames[:] = sorted(d for d in dirnames if os.path.join(dirpath, d) not in excluded)
            for f in sorted(filenames):
                p = os.path.join(dirpath, f)
                if p not in excluded and f.endswith((".swift", ".c", ".h", ".cpp", ".cc", ".m")):
                    yield p


def checkout_dirs(scratch_path):
    """Package identity -> checkout directory, from the workspace state SwiftPM keeps in the scratch path."""
    state_file = os.path.join(scratch_path, "workspace-state.json")
    dirs = {}
    try:
        with open(state_file) as f:
            state = json.load(f)
        for dep in state["object"]["dependencies"]:
            ref = dep["packageRef"]
            if ref["kind"] in ("localSourceControl", "fileSystem", "root"):
                dirs[ref["identity"]] = ref["location"]
            else:
                dirs[ref["identity"]] = os.path.join(scratch_path, "checkouts", dep["subpath"])
    except (OSError, KeyError, ValueError):
        pass
    return dirs


def product_modules(package, scratch_path):
    """(package identity, product name) -> module names, for the products the package's targets use."""
    wanted = {}
    for t in package["targets"]:
        for d in t["dependencies"]:
            if "product" in d:
                name, pkg = d["product"][0], d["product"][1]
                wanted.setdefault(pkg.lower(), set()).add(name)
    checkouts = checkout_dirs(scratch_path)
    modules = {}
    for pkg, products in sorted(wanted.items()):
        path = checkouts.get(pkg, os.path.join(scratch_path, "checkouts", pkg))
        if not os.path.isdir(path):
            fail(f"no checkout of package '{pkg}' in {scratch_path}; "
                 "run `swift package resolve` (or build) first")
        manifest = dump_package(path)
        declared = {p["name"]: p["targets"] for p in manifest["products"]}
        for product in products:
            if product not in declared:
                fail(f"package '{pkg}' has no product '{product}'")
            modules[(pkg, product)] = {c99_name(t) for t in declared[product]}
    return modules


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package-path", default=".")
    parser.add_argument("--scratch-path", default=None, help="SwiftPM's build folder (default: <package>/.build)")
    args = parser.parse_args()
    package_path = os.path.abspath(args.package_path)
    scratch = os.path.abspath(args.scratch_path or os.path.join(package_path, ".build"))

    package = dump_package(package_path)
    products = product_modules(package, scratch)
    targets = {t["name"]: t for t in package["targets"]}

    # C targets' public headers: a C source including one depends on that target.
    header_owner = {}
    for t in package["targets"]:
        include = os.path.join(target_dir(package_path, t), "include")
        for dirpath, _, filenames in os.walk(include):
            for f in filenames:
                header_owner[os.path.relpath(os.path.join(dirpath, f), include)] = c99_name(t["name"])

    problems = []
    used_packages = set()
    for t in package["targets"]:
        if t["type"] in ("system", "binary", "plugin", "macro"):
            continue
        own = c99_name(t["name"])
        # What each declared dependency makes importable, keyed by how Package.swift names it.
        provides = {}
        for d in t["dependencies"]:
            kind, value = next(iter(d.items()))
            if kind == "product":
                key = f'.product(name: "{value[0]}", package: "{value[1]}")'
                provides[key] = products[(value[1].lower(), value[0])]
                used_packages.add(value[1].lower())
            elif value[0] in targets:
                provides[f'"{value[0]}"'] = {c99_name(value[0])}
            else:
                problems.append(f"{t['name']}: dependency \"{value[0]}\" is not a target of this package "
                                "(name a product as .product(name:package:))")
        imported = {}  # module -> first file importing it
        for path in source_files(package_path, t):
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            if path.endswith(".swift"):
                found = SWIFT_IMPORT.findall(strip_swift_comments_and_strings(text))
            else:
                found = [header_owner[h] for h in C_INCLUDE.findall(text) if h in header_owner]
            for module in found:
                imported.setdefault(module, os.path.relpath(path, package_path))
        for module, where in sorted(imported.items()):
            if module == own or module in SYSTEM_MODULES:
                continue
            if not any(module in mods for mods in provides.values()):
                problems.append(f"{t['name']}: imports {module} ({where}) but does not declare it")
        for key, mods in provides.items():
            if not mods & imported.keys():
                problems.append(f"{t['name']}: declares {key} but imports none of {', '.join(sorted(mods))}")

    for d in package["dependencies"]:
        kind, value = next(iter(d.items()))
        identity = value[0]["identity"]
        if identity not in used_packages:
            problems.append(f"Package.swift: package dependency '{identity}' is used by no target")

    for p in problems:
        print(f"check-imports: {p}", file=sys.stderr)
    if problems:
        print(f"check-imports: {len(problems)} problem(s); Package.swift must declare exactly what each target imports",
              file=sys.stderr)
        return 1
    print(f"check-imports: {len(targets)} targets declare exactly what they import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
