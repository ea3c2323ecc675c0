"""The peer's pinyin for tools/bench/tts.py, made with pypinyin (0.55.0, in
.venv-bench), not with sisd's own conversion (the `pinyin` crate, Rust only).

Reads a JSON list of Mandarin sentences (hanzi and punctuation) on stdin and
writes the JSON list of espeak-ng inputs in the format sisd's engine hands to
`cmn-Latn-pinyin` (crates/sis-engine/src/tts/text.rs): each hanzi's pinyin
with the tone number at the end (no number for the neutral tone, `ü` as
written), separated by spaces, `,` after a clause, `.` at the end. pypinyin
reads runs of hanzi with its phrase dictionary, so a polyphone in a known
word may get another reading than the engine's one reading per character.
"""

import json
import re
import sys

from pypinyin import Style, lazy_pinyin

CLAUSE = set("，,、：:—–-~～·/")
SENTENCE = set("。．！？!?.…；;")
HANZI = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")


def espeak_input(sentence):
    out = []
    pause = ""
    pos = 0
    for m in HANZI.finditer(sentence):
        for c in sentence[pos:m.start()]:
            if c in SENTENCE:
                pause = "."
            elif c in CLAUSE and pause != ".":
                pause = ","
        pos = m.end()
        for syllable in lazy_pinyin(m.group(), style=Style.TONE3, v_to_u=True):
            if out and pause:
                out[-1] += pause
            pause = ""
            out.append(syllable)
    return " ".join(out) + "." if out else ""


def main():
    sentences = json.load(sys.stdin)
    json.dump([espeak_input(s) for s in sentences], sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    main()
