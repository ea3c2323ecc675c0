"""The OpenAPI document (`GET /openapi.json`, generated from the code by
utoipa: crates/sisd/src/openapi.rs): it is a valid OpenAPI 3.1 document,
it lists every route server.rs declares, and schemathesis, fuzzing a real
sisd (--auth sis, an X-Auth-Token of the path's project and an OpenAI API
key) from it, finds no server error (5xx), no undocumented status, no
response outside its documented schema and no undocumented content type."""

import base64
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import requests
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from conftest import ROOT, SISD, Server, cli

PID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
PASSWORD = "correct-horse-battery"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
# Examples per operation: small enough for ~2 minutes on two cores; the
# generation is deterministic, so a run repeats itself. Schemathesis' three
# generating phases: the documented examples, coverage (each constraint's
# edges, positive and negative) and fuzzing (positive and negative).
MAX_EXAMPLES = int(os.environ.get("SIS_OPENAPI_EXAMPLES", "40"))
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


@pytest.fixture(scope="module")
def world(models_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("openapi")
    key = subprocess.run([SISD, "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    (d / "master.key").write_text(key + "\n")
    env = {"SIS_DATA_DIR": str(d / "data"), "SIS_MASTER_KEY_FILE": str(d / "master.key")}
    cli(env, "projects", "create", "--domain", "acme", "--name", "cn-north-4", "--id", PID)
    cli(env, "users", "create", "--domain", "acme", "--name", "alice", stdin=PASSWORD + "\n")
    api_key = cli(env, "api-keys", "create", "--project", PID, "--description", "openapi")[0]["api_key"]
    log = d / "sisd.log"
    server = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe"], log=log, env=env)
    r = requests.post(server.base + "/v3/auth/tokens", timeout=30, json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "alice", "password": PASSWORD, "domain": {"name": "acme"}}}},
        "scope": {"project": {"id": PID}}}})
    assert r.status_code == 201, r.text
    yield dict(server=server, token=r.headers["X-Subject-Token"], api_key=api_key, dir=d, log=log)
    server.stop()


def document(world):
    r = requests.get(world["server"].base + "/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def routes_in_server_rs():
    """(METHOD, path) of every `.route("...", ...)` in server.rs and the
    methods chained on it (the same reading as openapi.rs's unit test,
    done again here so that a route added in a way that parser misses
    still fails one of them)."""
    src = (ROOT / "crates/sisd/src/server.rs").read_text()
    out = set()
    for chunk in src.split(".route(")[1:]:
        m = re.match(r'\s*"([^"]+)"', chunk)
        if not m:
            continue
        depth, end = 1, len(chunk)
        for i, c in enumerate(chunk):
            depth += {"(": 1, ")": -1}.get(c, 0)
            if depth == 0:
                end = i
                break
        for method in re.findall(r"(?<![A-Za-z0-9_])(get|post|put|delete|patch)\(", chunk[:end]):
            out.add((method.upper(), m.group(1)))
    return out


def test_the_document_is_valid_openapi(world):
    doc = document(world)
    assert doc["openapi"].startswith("3.1")
    validate(doc)
    schemes = doc["components"]["securitySchemes"]
    assert schemes["token"] == {"type": "apiKey", "in": "header", "name": "X-Auth-Token",
                                "description": schemes["token"]["description"]}
    assert schemes["aksk"]["name"] == "Authorization" and schemes["bearer"]["scheme"] == "bearer"
    error = doc["components"]["schemas"]["SisError"]
    assert set(error["required"]) == {"error_code", "error_msg"}


def test_every_route_is_in_the_document(world):
    doc = document(world)
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    routes = routes_in_server_rs()
    assert len(routes) >= 20, routes
    # the web console's pages and files are not an API
    pages = {("GET", "/console"), ("GET", "/console/"), ("GET", "/console/{file}")}
    assert pages <= routes, routes
    assert routes - pages == documented, (routes - pages - documented, documented - routes)
    # every SIS API lists the gateway's and authentication's errors with
    # the SIS body, and is secured by a token or a signature
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if not path.startswith("/v1/{project_id}/"):
                continue
            for status in ("401", "403", "429"):
                body = op["responses"][status]["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/SisError"}, (method, path, status)
            assert op["security"] == [{"token": []}, {"aksk": []}], (method, path)


def test_documented_error_bodies_are_what_the_server_sends(world):
    """A few answers by hand, so the fuzzing below is known to look."""
    base = world["server"].base
    h = {"X-Auth-Token": world["token"]}
    r = requests.post(f"{base}/v1/{PID}/asr/short-audio", data=b"{", headers=h, timeout=10)
    assert r.status_code == 400 and r.json()["error_code"] == "SIS.0032"
    r = requests.post(f"{base}/v1/{PID}/asr/short-audio", data=b"{}", timeout=10)
    assert r.status_code == 401 and r.json()["error_code"] == "APIG.0301"
    r = requests.delete(f"{base}/v3/auth/tokens", timeout=10)
    assert r.status_code == 400 and set(r.json()["error"]) == {"code", "title", "message"}


def schemathesis(world, *args, location=None, timeout=600):
    d = world["dir"]
    config = d / "schemathesis.toml"
    # the path's project must be the token's: every operation gets it
    config.write_text(f'[parameters]\n"path.project_id" = "{PID}"\n')
    cmd = [str(SCHEMATHESIS), "--config-file", str(config), "run",
           location or world["server"].base + "/openapi.json", "--url", world["server"].base,
           "--checks", CHECKS, "--max-examples", str(MAX_EXAMPLES), "--generation-deterministic", "--workers", "1", "--phases", "examples,coverage,fuzzing",
           "--request-timeout", "60", "--suppress-health-check", "all", "--no-color",
           "-H", f"X-Auth-Token: {world['token']}", "-H", f"Authorization: Bearer {world['api_key']}",
           "--report", "junit", "--report-junit-path", str(d / "junit.xml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=d)


def test_schemathesis_finds_nothing(world):
    r = schemathesis(world)
    out = r.stdout + r.stderr
    print(out[-20000:])
    assert r.returncode == 0, out[-20000:]
    # it tested every operation, each more than once
    suite = ET.parse(world["dir"] / "junit.xml").getroot()
    cases = suite.findall(".//testcase")
    doc = document(world)
    operations = sum(len(item) for item in doc["paths"].values())
    assert len(cases) == operations, [c.get("name") for c in cases]
    assert not suite.findall(".//failure") and not suite.findall(".//error")
    # the server is alive and serving
    assert requests.get(world["server"].base + "/health", timeout=10).status_code == 200


def test_schemathesis_fails_on_a_document_that_is_wrong(world):
    """The fuzzing can fail: in a copy of the document synthesis no longer
    lists 400, and the SIS error body demands a field the server never
    sends; both are reported."""
    doc = document(world)
    del doc["paths"]["/v1/{project_id}/tts"]["post"]["responses"]["400"]
    doc["components"]["schemas"]["SisError"]["required"].append("trace_id")
    wrong = world["dir"] / "wrong.json"
    wrong.write_text(json.dumps(doc))
    r = schemathesis(world, "--include-operation-id", "tts_post", "--include-operation-id", "short_audio_post",
                     location=str(wrong))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-5000:]
    assert "Undocumented HTTP status code" in out, out[-5000:]
    assert "Response violates schema" in out, out[-5000:]


def test_success_bodies_match_the_document(world, heldout):
    """Fuzzed requests are mostly refused; the answers of requests that
    succeed (recognition with word timings, synthesis, an upload and its job
    that finishes, a job that ends in ERROR, the vocabulary API, IAM,
    OpenAI verbose_json) are checked
    against their documented schemas here."""
    doc = document(world)
    base, h = world["server"].base, {"X-Auth-Token": world["token"]}

    def check(r, path, method, status=200):
        assert r.status_code == status, r.text
        content = doc["paths"][path][method]["responses"][str(status)].get("content")
        if content is None:
            assert r.content == b""
            return
        schema = content["application/json"]["schema"]
        Draft202012Validator({**schema, "components": doc["components"]}).validate(r.json())

    root, rows = heldout
    clip = next(r for r in rows if r["kind"] == "number")
    wav = (root / "16k" / f"{clip['id']}.wav").read_bytes()
    r = requests.post(f"{base}/v1/{PID}/asr/short-audio", headers=h, timeout=60, json={
        "data": base64.b64encode(wav).decode(),
        "config": {"audio_format": "wav", "property": "chinese_16k_common", "need_word_info": "yes"}})
    check(r, "/v1/{project_id}/asr/short-audio", "post")
    assert r.json()["result"]["word_info"]

    r = requests.post(f"{base}/v1/{PID}/tts", headers=h, timeout=60, json={"text": "你好", "config": {"sample_rate": 16000}})
    check(r, "/v1/{project_id}/tts", "post")

    voc = "/v1/{project_id}/asr/vocabularies"
    body = {"name": "openapi_doc", "language": "chinese_mandarin", "contents": ["华为", "HUAWEI|5", "花为=华为"]}
    r = requests.post(f"{base}/v1/{PID}/asr/vocabularies", headers=h, json=body, timeout=10)
    check(r, voc, "post")
    vid = r.json()["vocabulary_id"]
    one = f"{base}/v1/{PID}/asr/vocabularies/{vid}"
    check(requests.get(one, headers=h, timeout=10), voc + "/{vocabulary_id}", "get")
    check(requests.put(one, headers=h, json={**body, "description": "d"}, timeout=10), voc + "/{vocabulary_id}", "put")
    check(requests.get(f"{base}/v1/{PID}/asr/vocabularies", headers=h, timeout=10), voc, "get")
    check(requests.delete(one, headers=h, timeout=10), voc + "/{vocabulary_id}", "delete")

    # an upload, a job of it that finishes (word timings asked), the upload deleted
    r = requests.post(f"{base}/v1/{PID}/asr/transcriber/uploads", headers=h, data=wav, timeout=30)
    check(r, "/v1/{project_id}/asr/transcriber/uploads", "post")
    up = r.json()
    r = requests.post(f"{base}/v1/{PID}/asr/transcriber/jobs", headers=h, timeout=30, json={
        "data_url": up["data_url"],
        "config": {"audio_format": "auto", "property": "chinese_16k_common", "need_word_info": "yes"}})
    check(r, "/v1/{project_id}/asr/transcriber/jobs", "post")
    job = f"{base}/v1/{PID}/asr/transcriber/jobs/{r.json()['job_id']}"
    deadline = time.time() + 60
    while (r := requests.get(job, headers=h, timeout=10)).json()["status"] == "WAITING" and time.time() < deadline:
        time.sleep(0.3)
    assert r.json()["status"] == "FINISHED" and r.json()["segments"][0]["result"]["word_info"], r.text
    check(r, "/v1/{project_id}/asr/transcriber/jobs/{job_id}", "get")
    check(requests.delete(f"{base}/v1/{PID}/asr/transcriber/uploads/{up['upload_id']}", headers=h, timeout=10),
          "/v1/{project_id}/asr/transcriber/uploads/{upload_id}", "delete")

    check(requests.get(f"{base}/v3/projects", headers=h, timeout=10), "/v3/projects", "get")

    jobs = "/v1/{project_id}/asr/transcriber/jobs"
    r = requests.post(f"{base}/v1/{PID}/asr/transcriber/jobs", headers=h, timeout=10, json={
        "data_url": "http://sisd-openapi-test.invalid/a.wav",
        "config": {"audio_format": "auto", "property": "chinese_16k_common"}})
    check(r, jobs, "post")
    job = f"{base}/v1/{PID}/asr/transcriber/jobs/{r.json()['job_id']}"
    deadline = time.time() + 60
    while (r := requests.get(job, headers=h, timeout=10)).json()["status"] == "WAITING" and time.time() < deadline:
        check(r, jobs + "/{job_id}", "get")
        time.sleep(0.5)
    assert r.json()["status"] == "ERROR", r.text
    check(r, jobs + "/{job_id}", "get")

    r = requests.post(f"{base}/v1/audio/transcriptions", timeout=60,
                      headers={"Authorization": f"Bearer {world['api_key']}"},
                      files={"file": ("a.wav", wav, "audio/wav")},
                      data={"model": "chinese_16k_general", "response_format": "verbose_json",
                            "timestamp_granularities[]": ["word", "segment"]})
    check(r, "/v1/audio/transcriptions", "post")
    assert r.json()["words"] and r.json()["segments"]
