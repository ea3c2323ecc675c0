"""Writes crates/sis-engine/clippy.toml: every public type, field, function
and method of the sherpa-onnx crate, disallowed outside src/sherpa.rs.

Usage (after a sherpa-onnx upgrade, from the repository root):
    python3 crates/sis-engine/tools/sherpa_boundary_clippy.py ~/.cargo/registry/src/*/sherpa-onnx-X.Y.Z

It reads the crate's src/*.rs as text: `pub struct|enum` at the top level
(every module is re-exported at the crate root), `pub fn` at the top level and
directly inside an inherent `impl Name {`, and `pub field:` inside a struct.
"""

import pathlib
import re
import sys

REASON = "only src/sherpa.rs may use sherpa-onnx"
HEADER = """\
# The sealed engine boundary: only src/sherpa.rs may use sherpa-onnx
# (docs/ARCHITECTURE.md, "crates/sis-engine"). Every public type, field,
# function and method of sherpa-onnx {version} is listed below (written by
# tools/sherpa_boundary_clippy.py from the crate's source); src/sherpa.rs alone
# allows these lints. tests/sherpa_boundary.rs backs this up: it fails on any
# mention of the crate outside src/sherpa.rs (trait methods such as
# `Default::default` on a value whose type is never named escape clippy).
#
# Clippy reads the clippy.toml nearest to the crate it lints, so this one
# applies to sis-engine only (no other crate depends on sherpa-onnx).
"""


def items(src: pathlib.Path):
    types, fields, fns = set(), set(), set()
    for f in sorted(src.glob("*.rs")):
        if f.name == "lib.rs":
            continue
        depth, impl, impl_depth, struct = 0, None, 0, None
        for line in f.read_text().splitlines():
            s = line.strip()
            if s.startswith("//"):
                continue
            if depth == 0:
                m = re.match(r"pub (?:struct|enum) (\w+)", s)
                if m:
                    types.add(m.group(1))
                    struct = m.group(1) if s.endswith("{") and " struct " in f" {s}" else None
                m = re.match(r"impl(?:<[^>]*>)? (\w+)(?:<[^>]*>)? \{", s)
                if m:
                    impl, impl_depth = m.group(1), depth
            m = re.match(r"pub (?:unsafe )?(?:const )?fn (\w+)", s)
            if m:
                if depth == 0:
                    fns.add(m.group(1))
                elif impl and depth == impl_depth + 1:
                    fns.add(f"{impl}::{m.group(1)}")
            m = re.match(r"pub (\w+)\s*:", s)
            if m and struct and depth == 1:
                fields.add(f"{struct}::{m.group(1)}")
            depth += line.count("{") - line.count("}")
            if depth == 0:
                impl, struct = None, None
    return sorted(types), sorted(fields), sorted(fns)


def main():
    crate = pathlib.Path(sys.argv[1])
    version = crate.name.removeprefix("sherpa-onnx-")
    types, fields, fns = items(crate / "src")
    out = [HEADER.format(version=version)]
    for key, names in (("disallowed-types", types), ("disallowed-fields", fields), ("disallowed-methods", fns)):
        out.append(f"{key} = [")
        out += [f'  {{ path = "sherpa_onnx::{n}", reason = "{REASON}" }},' for n in names]
        out.append("]\n")
    target = pathlib.Path(__file__).resolve().parents[1] / "clippy.toml"
    target.write_text("\n".join(out))
    print(f"{target}: {len(types)} types, {len(fields)} fields, {len(fns)} functions and methods")


if __name__ == "__main__":
    main()
