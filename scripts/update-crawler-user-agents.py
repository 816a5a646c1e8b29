#!/usr/bin/env python3
"""Regenerates pixeld's bot list from the public crawler-user-agents data set.

Data: https://github.com/monperrus/crawler-user-agents (MIT licence, Martin Monperrus and
contributors), published on PyPI as `crawler-user-agents`, so `pip download` fetches it wherever
PyPI is reachable.

Usage:
    scripts/update-crawler-user-agents.py                  # latest release from PyPI
    scripts/update-crawler-user-agents.py --version 1.67.0 # a given release
    scripts/update-crawler-user-agents.py --json FILE --license FILE --version V  # local copy

Writes:
    Sources/PixelAnalytics/Bots/CrawlerUserAgentData.swift   the patterns (one regex per line)
                                                              with the data's licence in its header
    Tests/PixelAnalyticsTests/Fixtures/CrawlerInstances.swift one example user agent per pattern

Every pattern must stay inside the regex subset that PixelAnalytics' `BotPattern` compiles
(literals, escapes, `.`, `\\d \\s \\S \\w`, bracket classes, groups with `|`, `^`, `$`, `? * +`);
anything else makes this script fail, so a new construct is noticed, not silently skipped.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile

try:
    import re._parser as sre_parse  # Python 3.11+
except ImportError:  # pragma: no cover
    import sre_parse  # type: ignore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_OUT = os.path.join(ROOT, "Sources/PixelAnalytics/Bots/CrawlerUserAgentData.swift")
FIXTURE_OUT = os.path.join(ROOT, "Tests/PixelAnalyticsTests/Fixtures/CrawlerInstances.swift")

SUPPORTED = {"LITERAL", "NOT_LITERAL", "IN", "ANY", "AT", "BRANCH", "SUBPATTERN", "MAX_REPEAT"}


def check_subset(pattern):
    """Raises ValueError when `pattern` uses a construct BotPattern does not implement."""

    def walk(parsed):
        for op, av in parsed:
            name = str(op)
            if name not in SUPPORTED:
                raise ValueError(f"unsupported construct {name}")
            if name == "SUBPATTERN":
                walk(av[-1])
            elif name == "MAX_REPEAT":
                low, high, body = av
                if (low, high) not in ((0, 1), (0, sre_parse.MAXREPEAT), (1, sre_parse.MAXREPEAT)):
                    raise ValueError(f"unsupported repeat {{{low},{high}}}")
                walk(body)
            elif name == "BRANCH":
                for branch in av[1]:
                    walk(branch)
            elif name == "AT" and str(av) not in ("AT_BEGINNING", "AT_END"):
                raise ValueError(f"unsupported anchor {av}")

    if "\n" in pattern or '"""' in pattern or not pattern.isascii():
        raise ValueError("pattern must be one line of ASCII without triple quotes")
    if re.search(r"\{\d", pattern):
        raise ValueError("counted repeats are not supported")
    walk(sre_parse.parse(pattern))


def fetch(version):
    """Downloads the wheel with pip and returns (json_bytes, license_text, version)."""
    with tempfile.TemporaryDirectory() as directory:
        spec = "crawler-user-agents" + (f"=={version}" if version else "")
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", directory, spec],
            check=True,
        )
        wheels = [name for name in os.listdir(directory) if name.endswith(".whl")]
        if len(wheels) != 1:
            sys.exit(f"expected one wheel, found {wheels}")
        wheel = wheels[0]
        found_version = wheel.split("-")[1]
        with zipfile.ZipFile(os.path.join(directory, wheel)) as archive:
            names = archive.namelist()
            data = archive.read(next(n for n in names if n.endswith("crawler-user-agents.json")))
            licence = archive.read(next(n for n in names if n.endswith("LICENSE"))).decode()
        return data, licence, found_version


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", help="release of crawler-user-agents on PyPI (default: latest)")
    parser.add_argument("--json", help="use this crawler-user-agents.json instead of downloading")
    parser.add_argument("--license", help="the data's LICENSE file (with --json)")
    args = parser.parse_args()

    if args.json:
        if not (args.license and args.version):
            sys.exit("--json needs --license and --version")
        with open(args.json, "rb") as handle:
            data = handle.read()
        with open(args.license) as handle:
            licence = handle.read()
        version = args.version
    else:
        data, licence, version = fetch(args.version)

    entries = json.loads(data)
    patterns, instances, rejected = [], [], []
    for entry in entries:
        pattern = entry["pattern"]
        try:
            check_subset(pattern)
            re.compile(pattern)
        except (ValueError, re.error) as error:
            rejected.append(f"{pattern}: {error}")
            continue
        patterns.append(pattern)
        for example in entry.get("instances") or []:
            if example.isascii() and "\n" not in example and '"""' not in example and re.search(pattern, example):
                instances.append(example)
                break
    if rejected:
        sys.exit("patterns outside the supported subset:\n  " + "\n  ".join(rejected))
    if len(set(patterns)) != len(patterns):
        sys.exit("duplicate patterns in the data")

    licence_comment = "\n".join(("// " + line).rstrip() for line in licence.strip().splitlines())
    body = "\n".join(patterns)
    source = f"""// Generated by scripts/update-crawler-user-agents.py from crawler-user-agents {version}
// (https://github.com/monperrus/crawler-user-agents, `pip download crawler-user-agents=={version}`).
// Do not edit by hand: run the script again to update. {len(patterns)} patterns, one regular
// expression per line, compiled by `BotPattern`.
//
// The data is distributed under this licence:
//
{licence_comment}

extension CrawlerUserAgentList {{
    /// The release of crawler-user-agents these patterns come from.
    static let dataVersion = "{version}"

    /// One regular expression per line, matched case-sensitively against the whole user agent.
    static let patternText = #\"\"\"
{body}
\"\"\"#
}}
"""
    fixture = f"""// Generated by scripts/update-crawler-user-agents.py from crawler-user-agents {version} (MIT licence,
// see Sources/PixelAnalytics/Bots/CrawlerUserAgentData.swift). One example user agent per pattern.

enum CrawlerInstances {{
    /// Example bot user agents from the data set, one per line.
    static let text = #\"\"\"
{chr(10).join(instances)}
\"\"\"#
}}
"""
    os.makedirs(os.path.dirname(SOURCE_OUT), exist_ok=True)
    os.makedirs(os.path.dirname(FIXTURE_OUT), exist_ok=True)
    with open(SOURCE_OUT, "w") as handle:
        handle.write(source)
    with open(FIXTURE_OUT, "w") as handle:
        handle.write(fixture)
    print(f"crawler-user-agents {version}: {len(patterns)} patterns, {len(instances)} examples")


if __name__ == "__main__":
    main()
