"""Each class of bad input gets its SIS error, and the server keeps serving."""

import base64
import json
import struct
import uuid

import pytest
import requests

from encode import ffmpeg

PROP16 = "chinese_16k_common"


def good_clip(heldout):
    root, rows = heldout
    return (root / "16k" / f"{rows[0]['id']}.wav").read_bytes()


def wav_header(rate=16000, channels=1, bits=16, tag=1, data_len=0, declared=None, byte_rate=None):
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, byte_rate if byte_rate is not None else rate * align, align, bits)
    size = declared if declared is not None else data_len
    return b"RIFF" + struct.pack("<I", 36 + data_len) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size)


def post_raw(server, body: bytes, project="p1"):
    return requests.post(f"{server.base}/v1/{project}/asr/short-audio", data=body,
                         headers={"Content-Type": "application/json"}, timeout=60)


def body(data_b64, **config):
    cfg = {"audio_format": "pcm16k16bit", "property": PROP16}
    cfg.update(config)
    return json.dumps({"data": data_b64, "config": cfg}).encode()


def b64(b):
    return base64.b64encode(b).decode()


def cases(heldout):
    wav = good_clip(heldout)
    pcm = wav[44:]
    sixty_one_s = b"\0" * (16000 * 2 * 61)
    return [
        ("unknown format", body(b64(pcm), audio_format="opus"), 400, "SIS.0032", "audio_format"),
        ("unknown property", body(b64(pcm), property="klingon_16k_common"), 400, "SIS.0032", "property"),
        ("malformed property", body(b64(pcm), property="chinese"), 400, "SIS.0032", "property"),
        ("sample-rate mismatch raw", body(b64(pcm), property="chinese_8k_common"), 400, "SIS.0301", "not match model"),
        ("sample-rate mismatch wav", body(b64(wav), audio_format="wav", property="chinese_8k_common"), 400, "SIS.0301", "not match model"),
        ("audio over 60 s", body(b64(sixty_one_s)), 400, "SIS.0032", "60 s"),
        ("base64 over 4 MB", body("A" * (4 * 1024 * 1024 + 4)), 400, "SIS.0032", "4 MB"),
        ("invalid base64", body("!!!notbase64!!!"), 400, "SIS.0032", "base64"),
        ("data URL prefix", body("data:audio/wav;base64," + b64(pcm)), 400, "SIS.0032", "base64"),
        ("invalid JSON", b'{"data": "AAAA", "config": {', 400, "SIS.0032", "JSON"),
        ("not an object", b'"hello"', 400, "SIS.0032", "object"),
        ("missing data", json.dumps({"config": {"audio_format": "pcm16k16bit", "property": PROP16}}).encode(), 400, "SIS.0012", "data"),
        ("missing config", json.dumps({"data": b64(pcm)}).encode(), 400, "SIS.0012", "config"),
        ("missing audio_format", json.dumps({"data": b64(pcm), "config": {"property": PROP16}}).encode(), 400, "SIS.0012", "audio_format"),
        ("missing property", json.dumps({"data": b64(pcm), "config": {"audio_format": "pcm16k16bit"}}).encode(), 400, "SIS.0012", "property"),
        ("wrong type data", json.dumps({"data": 12, "config": {"audio_format": "pcm16k16bit", "property": PROP16}}).encode(), 400, "SIS.0032", "string"),
        ("wrong type config", json.dumps({"data": b64(pcm), "config": []}).encode(), 400, "SIS.0032", "object"),
        ("wrong type add_punc", body(b64(pcm), add_punc=True), 400, "SIS.0032", "add_punc"),
        ("bad yes/no value", body(b64(pcm), need_word_info="sure"), 400, "SIS.0032", "need_word_info"),
        ("empty data", body(""), 400, "SIS.0032", "empty"),
        ("empty audio wav", body(b64(wav_header()), audio_format="wav"), 400, "SIS.0032", "no samples"),
        ("odd-length pcm", body(b64(pcm[:-1])), 400, "SIS.0032", "even"),
        ("corrupt mp3", body(b64(b"\x00garbage" * 500), audio_format="mp3"), 400, "SIS.0032", "mp3"),
        ("corrupt aac", body(b64(b"\xde\xad\xbe\xef" * 500), audio_format="aac"), 400, "SIS.0032", "aac"),
        ("corrupt amr", body(b64(b"#!AMR\n\xff\xff\xff"), audio_format="amr", property="chinese_8k_common"), 400, "SIS.0032", "AMR"),
        ("truncated amr", body(b64(b"#!AMR\n\x3c" + b"\0" * 10), audio_format="amr", property="chinese_8k_common"), 400, "SIS.0032", "truncated"),
        ("truncated wav (header lies about size)", body(b64(wav[: len(wav) // 2]), audio_format="wav"), 400, "SIS.0032", "header declares"),
        ("wav lies about byte rate", body(b64(wav_header(data_len=3200, byte_rate=1234) + b"\0" * 3200), audio_format="wav"), 400, "SIS.0032", "inconsistent"),
        ("wav stereo", body(b64(wav_header(channels=2, data_len=3200) + b"\0" * 3200), audio_format="wav"), 400, "SIS.0032", "mono"),
        ("wav 44.1 kHz", body(b64(wav_header(rate=44100, data_len=3200) + b"\0" * 3200), audio_format="wav"), 400, "SIS.0032", "44100"),
        ("wav not a wav", body(b64(b"OggS" + b"\0" * 100), audio_format="wav"), 400, "SIS.0032", "RIFF"),
    ]


def test_bad_inputs_get_sis_errors_and_server_keeps_serving(server, heldout):
    failures = []
    good = good_clip(heldout)
    for name, payload, status, code, needle in cases(heldout):
        r = post_raw(server, payload)
        try:
            j = r.json()
        except ValueError:
            failures.append(f"{name}: non-JSON body {r.text[:80]!r}")
            continue
        if r.status_code != status or j.get("error_code") != code or needle.lower() not in j.get("error_msg", "").lower():
            failures.append(f"{name}: got {r.status_code} {j}")
        if not r.headers.get("X-Request-Id"):
            failures.append(f"{name}: no X-Request-Id")
        # nothing else broke
        ok = server.short_audio(good, "wav", PROP16)
        if ok.status_code != 200:
            failures.append(f"after {name}: good request failed {ok.status_code}")
    assert not failures, "\n".join(failures)


def test_body_over_gateway_limit(server):
    r = post_raw(server, b"x" * (13 * 1024 * 1024))
    assert r.status_code == 413
    assert r.json()["error_code"] == "APIG.0201"


def test_unknown_api_and_method(server):
    r = requests.put(f"{server.base}/v1/p1/asr/short-audio", data="{}")
    assert r.status_code == 404 and r.json()["error_code"] == "APIG.0101"
    # GET is short audio over WebSocket: without an upgrade, SIS.0032
    r = requests.get(f"{server.base}/v1/p1/asr/short-audio")
    assert r.status_code == 400 and r.json()["error_code"] == "SIS.0032", r.text
    r = requests.post(f"{server.base}/v1/p1/asr/nothing", data="{}")
    assert r.status_code == 404 and r.json()["error_code"] == "APIG.0101"
    assert r.json()["request_id"] == r.headers["X-Request-Id"]


def test_success_shape(server, heldout):
    r = server.short_audio(good_clip(heldout), "wav", PROP16, add_punc="yes", need_word_info="yes")
    assert r.status_code == 200
    j = r.json()
    assert len(j["trace_id"]) == 36
    # the trace id a client reports is the request id of the server's log line
    assert r.headers["X-Request-Id"] == j["trace_id"]
    res = j["result"]
    # the CTC test pack reports no token probabilities: no score (test_score.py)
    assert "score" not in res, res
    assert res["text"] and res["text"][-1] in "。？"
    assert all(w["start_time"] <= w["end_time"] for w in res["word_info"])
    # without need_word_info there is none
    r = server.short_audio(good_clip(heldout), "wav", PROP16)
    assert "word_info" not in r.json()["result"]


def test_unicode_escaped_json(server, heldout):
    # the Python SDK sends ASCII-escaped JSON: a vocabulary of escaped words...
    vocab = json.dumps({"name": f"escaped_{uuid.uuid4().hex[:8]}", "language": "chinese_mandarin", "contents": ["\u70ed\u8bcd"]},
                       ensure_ascii=True)
    assert "\\u70ed" in vocab
    r = requests.post(f"{server.base}/v1/p1/asr/vocabularies", data=vocab.encode(),
                      headers={"Content-Type": "application/json;charset=utf-8"}, timeout=30)
    assert r.status_code == 200, r.text
    vid = r.json()["vocabulary_id"]
    assert requests.get(f"{server.base}/v1/p1/asr/vocabularies/{vid}", timeout=30).json()["contents"] == ["热词"]
    # ...and a request naming it
    payload = json.dumps({"data": b64(good_clip(heldout)), "config": {"audio_format": "wav", "property": PROP16,
                                                                       "vocabulary_id": vid}}, ensure_ascii=True)
    assert post_raw(server, payload.encode()).status_code == 200
    # an id that names no vocabulary is refused, not ignored
    payload = json.dumps({"data": b64(good_clip(heldout)), "config": {"audio_format": "wav", "property": PROP16,
                                                                       "vocabulary_id": "\u70ed\u8bcd"}}, ensure_ascii=True)
    r = post_raw(server, payload.encode())
    assert r.status_code == 400 and r.json()["error_code"] == "SIS.0201", r.text
    assert "热词" in r.json()["error_msg"]
    assert requests.delete(f"{server.base}/v1/p1/asr/vocabularies/{vid}", timeout=30).status_code == 200
