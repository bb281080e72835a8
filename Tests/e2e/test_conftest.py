"""conftest.py's rule: a test skipped for a missing package fails, so CI cannot hide it; other skips stay skips."""
import pathlib

pytest_plugins = ["pytester"]


def test_a_missing_package_fails_and_other_skips_stay_skips(pytester):
    pytester.makeconftest((pathlib.Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(test_inner='''
        import pytest

        def test_needs_a_missing_package():
            pytest.importorskip("pagoda_no_such_package")

        def test_skips_for_another_reason():
            pytest.skip("not on this platform")
    ''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*could not import 'pagoda_no_such_package'*requirements.txt*"])
