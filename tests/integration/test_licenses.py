"""The Apache-2.0 binary carries no GPL code, and LGPL code only as shared
libraries (docs/ARCHITECTURE.md, invariants): espeak-ng (GPL-3) runs as a
separate process and no espeak library is linked; LAME (LGPL) is Debian's
shared libmp3lame, its functions undefined in our binary; no crate in the
dependency graph is under a GPL or LGPL licence."""

import json
import re
import subprocess

from conftest import ROOT, SISD


def test_no_gpl_crate_in_the_dependency_graph():
    # the graph of what is built for this machine (crates only other
    # targets use, e.g. Windows', need not even be downloaded)
    host = re.search(r"^host: (\S+)$", subprocess.run(["rustc", "-vV"], capture_output=True, text=True,
                                                       check=True).stdout, re.M).group(1)
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--offline", "--filter-platform", host],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    resolved = {n["id"] for n in meta["resolve"]["nodes"]}
    bad = [(p["name"], p["version"], p.get("license")) for p in meta["packages"]
           if p["id"] in resolved and re.search(r"\bL?GPL", p.get("license") or "")
           and not re.search(r"\b(MIT|Apache-2\.0|BSD-[23]-Clause|Zlib|ISC|MPL-2\.0)\b", p.get("license") or "")]
    assert not bad, bad
    assert len(resolved) > 100


def test_espeak_is_not_linked_and_lame_only_dynamically():
    ldd = subprocess.run(["ldd", SISD], capture_output=True, text=True, check=True).stdout
    assert "espeak" not in ldd, ldd
    assert re.search(r"libmp3lame\.so\.\d", ldd), ldd
    undefined = subprocess.run(["nm", "-D", "--undefined-only", SISD],
                               capture_output=True, text=True, check=True).stdout
    defined = subprocess.run(["nm", "-D", "--defined-only", SISD],
                             capture_output=True, text=True, check=True).stdout
    assert re.search(r"\blame_init\b", undefined)
    assert not re.search(r"\b(lame_|espeak_)", defined)
