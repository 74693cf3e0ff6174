"""Print the totals of a pytest JUnit report; exit 1 if no test passed."""

import sys
import xml.etree.ElementTree as ET


def main(path: str) -> int:
    """Print the totals of the report at ``path``; 0 only if some test ran and passed."""
    suites = ET.parse(path).getroot().iter("testsuite")
    keys = ("tests", "failures", "errors", "skipped")
    totals = dict.fromkeys(keys, 0)
    for suite in suites:
        for key in keys:
            totals[key] += int(suite.get(key, "0"))
    passed = totals["tests"] - totals["failures"] - totals["errors"] - totals["skipped"]
    print(f"pytest: {passed} passed, " + ", ".join(f"{totals[k]} {k}" for k in keys[1:]))
    if passed <= 0:
        print("pytest ran no test that passed: nothing was checked", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
