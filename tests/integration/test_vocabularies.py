"""Hot-word vocabularies (issue 14): the official v3 SDK (`huaweicloudsdksis`,
AK/SK against a real sisd with --auth sis) drives create/update/show/list/
delete and its models read every answer; field errors reach it as SIS codes;
another project sees nothing. A `vocabulary_id` is resolved in short-audio,
each RASR mode and jobs: an unknown one (or another project's) is refused
with SIS.0201, a valid one is accepted; a session keeps its vocabulary when
the table is deleted under it; a job uses the table as it is when it runs.
Two nodes sharing a PostgreSQL store see each other's changes within a
second, and the store's own tests run on that PostgreSQL. (Whether hot
words change what is recognised is the engine's test.)"""

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import uuid
import wave
from urllib.parse import quote

import pytest
import requests
import websocket

from conftest import ROOT, Server, cli, sis_store
from signer import sdk_date, sign

PID = "0123456789abcdef0123456789abcdef"
PID_B = "fedcba9876543210fedcba9876543210"
MODES = ["short-stream", "continue-stream", "sentence-stream"]
MISSING = "5A7B1C3E-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def world(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("vocab")
    env, cred = sis_store(d, PID)
    cli(env, "projects", "create", "--domain", "acme", "--name", "cn-east-3", "--id", PID_B)
    cred_b = cli(env, "credentials", "create", "--project", PID_B)[0]
    root, rows = heldout
    sentence = [r for r in rows if r["kind"] == "sentence"][0]
    files = d / "files"
    files.mkdir()
    shutil.copy(root / "16k" / f"{sentence['id']}.wav", files / "a.wav")
    stall = socket.socket()  # an audio server that never answers
    stall.bind(("127.0.0.1", 0))
    stall.listen(16)
    server = Server([models_dir], d / "data", log=d / "sisd.log",
                    env={**env, "SIS_FETCH_ALLOW": "127.0.0.1"},
                    extra=["--auth", "sis", "--no-probe", "--vocabulary-max-tables", "8",
                           "--job-workers", "1", "--job-project-max", "1", "--job-files-dir", str(files),
                           "--fetch-stall-s", "3"])
    yield dict(server=server, cred=cred, cred_b=cred_b, files=files, sentence=sentence, root=root,
               stall=stall.getsockname()[1], log=d / "sisd.log")
    server.stop()
    stall.close()


def client(w, cred=None):
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdksis.v1 import SisClient

    c = cred or w["cred"]
    creds = BasicCredentials(c["access_key"], c["secret_key"], c["project_id"])
    return SisClient.new_builder().with_credentials(creds).with_endpoint(w["server"].base).build()


def create(c, name, contents, description="desc"):
    from huaweicloudsdksis.v1.model import CreateVocabularyRequest, PostCreateVocabReq

    return c.create_vocabulary(CreateVocabularyRequest(body=PostCreateVocabReq(
        name=name, description=description, language="chinese_mandarin", contents=contents)))


def sdk_error(fn):
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException

    with pytest.raises(ClientRequestException) as e:
        fn()
    return e.value


def unique(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# ---- the API through the official SDK ----

def test_sdk_drives_every_vocabulary_api(world):
    from huaweicloudsdksis.v1.model import (
        CreateVocabularyResponse, DeleteVocabularyRequest, DeleteVocabularyResponse, PutUpdateVocabReq,
        ShowVocabulariesParams, ShowVocabulariesRequest, ShowVocabulariesResponse, ShowVocabularyRequest,
        ShowVocabularyResponse, UpdateVocabularyRequest, UpdateVocabularyResponse, VocabInfo)

    c = client(world)
    name = unique("sdk")
    words = ["华为", "HUAWEI", "华为云|8", "西艾斯=SIS"]
    r = create(c, name, words)
    assert isinstance(r, CreateVocabularyResponse) and r.status_code == 200
    vid = r.vocabulary_id
    assert str(uuid.UUID(vid)).upper() == vid  # an upper-case UUID, as SIS shows them

    s = c.show_vocabulary(ShowVocabularyRequest(vocabulary_id=vid))
    assert isinstance(s, ShowVocabularyResponse)
    assert (s.vocabulary_id, s.name, s.description, s.language, s.contents) == (
        vid, name, "desc", "chinese_mandarin", words)

    u = c.update_vocabulary(UpdateVocabularyRequest(vocabulary_id=vid, body=PutUpdateVocabReq(
        name=name, description="desc2", language="chinese_mandarin", contents=["华为云"])))
    assert isinstance(u, UpdateVocabularyResponse) and u.vocabulary_id == vid
    s = c.show_vocabulary(ShowVocabularyRequest(vocabulary_id=vid))
    assert (s.description, s.contents) == ("desc2", ["华为云"])

    listed = c.show_vocabularies(ShowVocabulariesRequest(offset=0, limit=10))
    assert isinstance(listed, ShowVocabulariesResponse)
    assert listed.count >= 1
    mine = [v for v in listed.result if v.vocabulary_id == vid]
    assert len(mine) == 1 and isinstance(mine[0], VocabInfo)
    assert (mine[0].name, mine[0].language, mine[0].description) == (name, "chinese_mandarin", "desc2")
    # the SDK's name filter travels as a JSON body on the GET
    other = create(c, unique("other"), ["华为"]).vocabulary_id
    filtered = c.show_vocabularies(ShowVocabulariesRequest(offset=0, limit=10, body=ShowVocabulariesParams(name=name)))
    assert filtered.count == 1 and [v.vocabulary_id for v in filtered.result] == [vid]
    page = c.show_vocabularies(ShowVocabulariesRequest(offset=1, limit=1))
    assert page.count == listed.count + 1 and len(page.result) == 1

    d = c.delete_vocabulary(DeleteVocabularyRequest(vocabulary_id=vid))
    assert isinstance(d, DeleteVocabularyResponse) and d.status_code == 200
    assert d.raw_content in (b"", None), d.raw_content  # 200, no body
    e = sdk_error(lambda: c.show_vocabulary(ShowVocabularyRequest(vocabulary_id=vid)))
    assert (e.status_code, e.error_code) == (400, "SIS.0201"), e
    assert e.request_id
    c.delete_vocabulary(DeleteVocabularyRequest(vocabulary_id=other))


@pytest.mark.parametrize("case", ["lower-case", "digit", "space", "long-word", "weight", "rule", "name",
                                  "language", "duplicate", "empty"])
def test_sdk_sees_the_field_errors(world, case):
    c = client(world)
    taken = unique("taken")
    if case == "duplicate":
        create(c, taken, ["华为"])
    name, words, language = unique("bad"), ["华为"], "chinese_mandarin"
    code = "SIS.0203"
    if case == "lower-case":
        words = ["华为", "Huawei"]  # the SDK documentation's own example
    elif case == "digit":
        words = ["五G", "5G"]
    elif case == "space":
        words = ["HUAWEI CLOUD"]
    elif case == "long-word":
        words = ["华" * 11]
    elif case == "weight":
        words = ["华为|0"]
    elif case == "rule":
        words = ["花为=华为=华"]
    elif case == "name":
        name, code = "热词表", "SIS.0032"
    elif case == "language":
        language, code = "english", "SIS.0205"
    elif case == "duplicate":
        name, code = taken, "SIS.0204"
    elif case == "empty":
        words, code = [], "SIS.0032"
    from huaweicloudsdksis.v1.model import CreateVocabularyRequest, PostCreateVocabReq

    e = sdk_error(lambda: c.create_vocabulary(CreateVocabularyRequest(body=PostCreateVocabReq(
        name=name, description="d", language=language, contents=words))))
    assert (e.status_code, e.error_code) == (400, code), (e.error_code, e.error_msg)
    assert e.error_msg


def test_another_project_sees_nothing(world):
    from huaweicloudsdksis.v1.model import (DeleteVocabularyRequest, PutUpdateVocabReq, ShowVocabulariesRequest,
                                            ShowVocabularyRequest, UpdateVocabularyRequest)

    a, b = client(world), client(world, world["cred_b"])
    vid = create(a, unique("mine"), ["华为"]).vocabulary_id
    for call in (
        lambda: b.show_vocabulary(ShowVocabularyRequest(vocabulary_id=vid)),
        lambda: b.update_vocabulary(UpdateVocabularyRequest(vocabulary_id=vid, body=PutUpdateVocabReq(
            name="x", language="chinese_mandarin", contents=["华为"]))),
        lambda: b.delete_vocabulary(DeleteVocabularyRequest(vocabulary_id=vid)),
        lambda: b.show_vocabulary(ShowVocabularyRequest(vocabulary_id=MISSING)),
    ):
        e = sdk_error(call)
        assert (e.status_code, e.error_code) == (400, "SIS.0201")
    assert vid not in [v.vocabulary_id for v in b.show_vocabularies(ShowVocabulariesRequest(limit=100)).result or []]
    assert a.show_vocabulary(ShowVocabularyRequest(vocabulary_id=vid)).contents == ["华为"]
    a.delete_vocabulary(DeleteVocabularyRequest(vocabulary_id=vid))


# ---- vocabulary_id in every API that takes one ----

@pytest.fixture(scope="module")
def vocab(world):
    """A vocabulary of project A, one of project B; deleted at the end."""
    from huaweicloudsdksis.v1.model import DeleteVocabularyRequest

    a, b = client(world), client(world, world["cred_b"])
    mine = create(a, unique("hot"), ["华为云", "SIS|5"]).vocabulary_id
    theirs = create(b, unique("hot"), ["华为云"]).vocabulary_id
    yield dict(mine=mine, theirs=theirs)
    a.delete_vocabulary(DeleteVocabularyRequest(vocabulary_id=mine))
    b.delete_vocabulary(DeleteVocabularyRequest(vocabulary_id=theirs))


def wav_bytes(w):
    return (w["files"] / "a.wav").read_bytes()


def test_short_audio(world, vocab):
    import base64

    from huaweicloudsdksis.v1.model import Config, PostShortAudioReq, RecognizeShortAudioRequest

    c = client(world)
    data = base64.b64encode(wav_bytes(world)).decode()

    def recognise(vid):
        return c.recognize_short_audio(RecognizeShortAudioRequest(body=PostShortAudioReq(
            config=Config(audio_format="wav", _property="chinese_16k_general", digit_norm="no", vocabulary_id=vid),
            data=data)))

    r = recognise(vocab["mine"])
    assert r.status_code == 200 and r.result.text
    assert recognise(vocab["mine"].lower()).status_code == 200
    for bad in (vocab["theirs"], MISSING, "vocab-1"):
        e = sdk_error(lambda: recognise(bad))
        assert (e.status_code, e.error_code) == (400, "SIS.0201"), (bad, e.error_msg)


def pcm16k(w, lead_s=0.5, tail_s=1.0):
    with wave.open(str(w["files"] / "a.wav")) as f:
        data = f.readframes(f.getnframes())
    out = b"\0" * int(32000 * lead_s) + data + b"\0" * int(32000 * tail_s)
    return out + b"\0" * (-len(out) % 3200)


def connect(w, mode, cred=None):
    c = cred or w["cred"]
    base = w["server"].base
    host = base.split("//", 1)[1]
    path = f"/v1/{c['project_id']}/rasr/{mode}"
    h = {"X-Sdk-Date": sdk_date(), "host": host}
    h["Authorization"] = sign(c["access_key"], c["secret_key"], "GET", path, None, h, b"")
    del h["host"]
    return websocket.create_connection("ws://" + host + path, header=h, timeout=30)


CONFIG = {"audio_format": "pcm16k16bit", "property": "chinese_16k_general", "digit_norm": "no"}


def start(ws, vid):
    ws.send(json.dumps({"command": "START", "config": {**CONFIG, "vocabulary_id": vid}}))
    return json.loads(ws.recv())


def finish(ws, audio, trace, on_half=None):
    for i in range(0, len(audio), 3200):
        if on_half and i == (len(audio) // 2) // 3200 * 3200:
            on_half()
        ws.send_binary(audio[i:i + 3200])
    ws.send(json.dumps({"command": "END", "cancel": False}))
    msgs = []
    while True:
        m = json.loads(ws.recv())
        msgs.append(m)
        assert m["trace_id"] == trace, m
        if m["resp_type"] in ("END", "ERROR", "FATAL_ERROR"):
            return msgs


@pytest.mark.parametrize("mode", MODES)
def test_rasr_modes(world, vocab, mode):
    ws = connect(world, mode)
    for bad in (vocab["theirs"], MISSING):
        m = start(ws, bad)
        assert (m["resp_type"], m["error_code"]) == ("ERROR", "SIS.0201"), m
        assert m["trace_id"]
    # the connection stays usable, and a valid vocabulary starts a session
    m = start(ws, vocab["mine"])
    assert m["resp_type"] == "START", m
    msgs = finish(ws, pcm16k(world), m["trace_id"])
    assert msgs[-1]["resp_type"] == "END" and msgs[-1]["reason"] == "NORMAL", msgs
    finals = [s for x in msgs if x["resp_type"] == "RESULT" for s in x["segments"] if s["is_final"]]
    assert finals and finals[0]["result"]["text"], msgs
    ws.close()
    line = [ln for ln in world["log"].read_text().splitlines()
            if "real-time session api=" in ln and f'mode="{mode}"' in ln][-1]
    assert f'vocabulary_id="{vocab["mine"]}"' in line and "vocabulary_version=1" in line, line


def test_a_session_keeps_its_vocabulary_when_it_is_deleted(world):
    from huaweicloudsdksis.v1.model import DeleteVocabularyRequest

    c = client(world)
    vid = create(c, unique("gone"), ["华为云"]).vocabulary_id
    ws = connect(world, "continue-stream")
    m = start(ws, vid)
    assert m["resp_type"] == "START", m
    msgs = finish(ws, pcm16k(world), m["trace_id"],
                  on_half=lambda: c.delete_vocabulary(DeleteVocabularyRequest(vocabulary_id=vid)))
    assert msgs[-1]["resp_type"] == "END" and msgs[-1]["reason"] == "NORMAL", msgs
    assert any(x["resp_type"] == "RESULT" for x in msgs)
    # a new session cannot use it any more
    m = start(ws, vid)
    assert (m["resp_type"], m["error_code"]) == ("ERROR", "SIS.0201"), m
    ws.close()


def signed(w, method, path, body=None, cred=None):
    c = cred or w["cred"]
    base = w["server"].base
    raw = json.dumps(body).encode() if body is not None else b""
    h = {"Content-Type": "application/json;charset=utf-8", "X-Sdk-Date": sdk_date(),
         "Host": base.split("//", 1)[1]}
    h["Authorization"] = sign(c["access_key"], c["secret_key"], method, path, None, h, raw)
    return requests.request(method, base + path, data=raw, headers=h, timeout=30)


def push_job(w, url, vid):
    return signed(w, "POST", f"/v1/{PID}/asr/transcriber/jobs", {
        "data_url": url,
        "config": {"audio_format": "auto", "property": "chinese_16k_general", "digit_norm": "no",
                   "vocabulary_id": vid}})


def job_status(w, job_id, timeout=60):
    deadline = time.time() + timeout
    while True:
        r = signed(w, "GET", f"/v1/{PID}/asr/transcriber/jobs/{job_id}").json()
        if r["status"] != "WAITING" or time.time() > deadline:
            return r
        time.sleep(0.2)


def test_jobs(world, vocab):
    from huaweicloudsdksis.v1.model import DeleteVocabularyRequest

    url = "file://" + quote(str(world["files"] / "a.wav"))
    for bad in (vocab["theirs"], MISSING):
        r = push_job(world, url, bad)
        assert r.status_code == 400 and r.json()["error_code"] == "SIS.0201", r.text
    r = push_job(world, url, vocab["mine"])
    assert r.status_code == 200, r.text
    done = job_status(world, r.json()["job_id"])
    assert done["status"] == "FINISHED" and done["segments"], done

    # the job runs with the table as it is then: deleted meanwhile, it fails
    c = client(world)
    vid = create(c, unique("job"), ["华为云"]).vocabulary_id
    # the only job worker waits on an audio server that never answers
    blocker = push_job(world, f"http://127.0.0.1:{world['stall']}/a.wav", vocab["mine"])
    assert blocker.status_code == 200, blocker.text
    time.sleep(0.5)
    r = push_job(world, url, vid)
    assert r.status_code == 200, r.text
    c.delete_vocabulary(DeleteVocabularyRequest(vocabulary_id=vid))
    failed = job_status(world, r.json()["job_id"])
    assert (failed["status"], failed.get("error_code")) == ("ERROR", "SIS.0201"), failed
    assert job_status(world, blocker.json()["job_id"])["error_code"] == "SIS.0001"


# ---- two nodes on one PostgreSQL store ----

def database(postgres, name):
    """A database of its own on the suite's PostgreSQL cluster; its URL."""
    port = postgres.rsplit(":", 1)[1].split("/")[0]
    subprocess.run(["psql", "-h", "127.0.0.1", "-p", port, "-U", "sis", "-d", "postgres", "-c",
                    f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return postgres.rsplit("/", 1)[0] + "/" + name


def versions_used(log, vid):
    pattern = re.compile(rf'vocabulary_id="{vid}" vocabulary_version=(\d+)')
    return [int(m.group(1)) for m in pattern.finditer(log.read_text())]


def tone_wav():
    """1 s of a 440 Hz tone, 16 kHz mono WAV."""
    import io
    import math
    import struct

    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * 440 * i / 16000)))
                               for i in range(16000)))
    return buf.getvalue()


def a_second_after(t0, call):
    """Calls `call` again and again until one call starts more than 1 s after
    `t0`; returns (seconds after t0 it started, its result) for each."""
    out = []
    while True:
        started = time.monotonic() - t0
        out.append((started, call()))
        if started > 1.0:
            return out


def test_two_nodes_see_changes_within_a_second(models_dir, tmp_path, postgres):
    import base64

    url = database(postgres, "vocab_nodes")
    env = {"SIS_STORE_URL": url}
    extra = ["--no-probe", "--vocabulary-max-tables", "5"]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a, b = (Server([models_dir], tmp_path / f"data{i}", extra=extra, log=logs[i], env=env) for i in range(2))
    try:
        base = "/v1/p/asr/vocabularies"
        body = {"name": "live", "language": "chinese_mandarin", "contents": ["华为"]}
        r = requests.post(a.base + base, json=body, timeout=30)
        assert r.status_code == 200, r.text
        vid = r.json()["vocabulary_id"]
        data = base64.b64encode(tone_wav()).decode()

        def recognise(node):
            return requests.post(node.base + "/v1/p/asr/short-audio", timeout=60, json={
                "data": data, "config": {"audio_format": "wav", "property": "chinese_16k_general",
                                         "vocabulary_id": vid}})

        def on_b():
            r = recognise(b)
            used = versions_used(logs[1], vid)
            return r.status_code, r.json().get("error_code"), used[-1] if used else None

        # created on A: B takes it at once (and keeps a copy)
        assert on_b() == (200, None, 1)
        assert requests.get(f"{b.base}{base}/{vid}", timeout=30).json()["contents"] == ["华为"]
        # names are unique across nodes
        r = requests.post(b.base + base, json=body, timeout=30)
        assert r.json()["error_code"] == "SIS.0204", r.text

        # changed on A: every request B starts a second later uses the new version
        r = requests.put(f"{a.base}{base}/{vid}", json={**body, "contents": ["华为云"]}, timeout=30)
        assert r.status_code == 200, r.text
        seen = a_second_after(time.monotonic(), on_b)
        assert all(res[:2] == (200, None) for _, res in seen), seen
        assert all(res[2] == 2 for t, res in seen if t > 1.0), seen
        first = next((t for t, res in seen if res[2] == 2), None)
        print(f"B used the new version from {first:.3f} s after the update ({len(seen)} requests)")
        assert requests.get(f"{b.base}{base}/{vid}", timeout=30).json()["contents"] == ["华为云"]

        # deleted on A: every request B starts a second later is refused
        assert requests.delete(f"{a.base}{base}/{vid}", timeout=30).status_code == 200
        seen = a_second_after(time.monotonic(), lambda: recognise(b).json().get("error_code"))
        assert all(code == "SIS.0201" for t, code in seen if t > 1.0), seen
        refused = [code == "SIS.0201" for _, code in seen]
        assert refused == sorted(refused), seen  # once refused, always refused

        # both nodes creating at once: the project limit (5) holds
        def make(node, i, out):
            out.append(requests.post(node.base + "/v1/q/asr/vocabularies", timeout=30, json={
                "name": f"n{i}", "language": "chinese_mandarin", "contents": ["华为"]}))
        results = []
        threads = [threading.Thread(target=make, args=((a, b)[i % 2], i, results)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r.json().get("error_code", "ok") for r in results)
        assert codes == ["SIS.0208"] * 7 + ["ok"] * 5, codes
        assert requests.get(b.base + "/v1/q/asr/vocabularies", timeout=30).json()["count"] == 5
    finally:
        a.stop()
        b.stop()


def test_store_contract_on_postgres(postgres):
    """sis-store's vocabulary tests (vocabularies::tests::contract) on PostgreSQL."""
    cargo = shutil.which("cargo") or os.path.expanduser("~/.cargo/bin/cargo")
    if not os.path.exists(cargo):
        pytest.skip("cargo not found")
    url = database(postgres, "vocab_store")
    # --workspace: the artifacts ./scripts/test already built are reused
    r = subprocess.run([cargo, "test", "--release", "--workspace", "--lib", "vocabularies_on_postgres"],
                       cwd=ROOT, env={**os.environ, "SIS_TEST_POSTGRES_URL": url},
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "vocabularies::tests::vocabularies_on_postgres ... ok" in r.stdout, r.stdout[-3000:]
