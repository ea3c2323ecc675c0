"""Authentication and tenancy (issue 3): AK/SK signatures, IAM-style tokens,
project isolation, the failure lock, the official v3 SDK and WebSocket
upgrades, and no secret in the logs. A real sisd runs with --auth sis on a
real SQLite store; credentials are made with the operator commands."""

import base64
import json
import os
import subprocess
import sys
import time

import pytest
import requests
import websocket

from conftest import SISD, Server, cli
from signer import canonical_request, sdk_date, sign

PID_A = "0123456789abcdef0123456789abcdef"
PID_B = "fedcba9876543210fedcba9876543210"
PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def world(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("auth")
    key = subprocess.run([SISD, "keygen"], capture_output=True, text=True, check=True).stdout.strip()
    (d / "master.key").write_text(key + "\n")
    env = {"SIS_DATA_DIR": str(d / "data"), "SIS_MASTER_KEY_FILE": str(d / "master.key")}
    cli(env, "projects", "create", "--domain", "acme", "--name", "cn-north-4", "--id", PID_A)
    cli(env, "projects", "create", "--domain", "acme", "--name", "cn-east-3", "--id", PID_B)
    other = cli(env, "projects", "create", "--domain", "globex", "--name", "cn-north-4")[0]
    cli(env, "users", "create", "--domain", "acme", "--name", "alice", stdin=PASSWORD + "\n")
    cli(env, "users", "create", "--domain", "globex", "--name", "bob", stdin=PASSWORD + "\n")
    creds = {name: cli(env, "credentials", "create", "--project", pid, "--description", name)[0]
             for name, pid in [("a", PID_A), ("a2", PID_A), ("lock", PID_A), ("revoke", PID_A), ("b", PID_B)]}
    log = d / "sisd.log"
    server = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe"], log=log, env=env)
    # A second node on the same store issuing 2-second tokens (for expiry).
    short = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe", "--token-ttl-s", "2"],
                   log=d / "short.log", env=env)
    root, rows = heldout
    clip = next(r for r in rows if r["kind"] == "number")
    audio = (root / "16k" / f"{clip['id']}.wav").read_bytes()
    body = json.dumps({"config": {"audio_format": "wav", "property": "chinese_16k_common", "digit_norm": "no"},
                       "data": base64.b64encode(audio).decode()}).encode()
    w = dict(env=env, server=server, short=short, creds=creds, other_project=other, log=log,
             short_log=d / "short.log", key=key, body=body, expected=clip["text"], dir=d)
    yield w
    server.stop()
    short.stop()


def signed_post(w, cred, *, project=PID_A, path=None, body=None, headers=None, date_offset=0,
                tamper=None, extra_headers=None, query=None):
    """A short-audio POST signed like the v3 SDK (user-agent included);
    `tamper(headers, path, query, body)` may change the request after signing."""
    base = w["server"].base
    port = base.rsplit(":", 1)[1]
    path = path or f"/v1/{project}/asr/short-audio"
    body = w["body"] if body is None else body
    h = {"User-Agent": "huaweicloud-usdk-python/3.0; app/test", "Content-Type": "application/json;charset=utf-8",
         "X-Project-Id": project, "X-Sdk-Date": sdk_date(date_offset), "Host": f"127.0.0.1:{port}"}
    h.update(headers or {})
    h["Authorization"] = sign(cred["access_key"], cred["secret_key"], "POST", path, query, h, body)
    if tamper:
        h, path, query, body = tamper(h, path, query, body)
    h.update(extra_headers or {})
    url = base + path + (f"?{query}" if query else "")
    return requests.post(url, data=body, headers=h, timeout=60)


def ok_transcript(w, r):
    assert r.status_code == 200, r.text
    assert r.json()["result"]["text"] == w["expected"]


def assert_gateway(r, status, code, msg):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error_code"] == code, body
    assert body["error_msg"] == msg, body
    assert r.headers["x-request-id"]


IAM = "Incorrect IAM authentication information: "


def test_test_signer_matches_the_sdk_vector():
    # sdk-captures.md §6 "POST short-audio": the test suite's own signer agrees.
    h = {"Content-Type": "application/json;charset=utf-8", "X-Project-Id": PID_A,
         "X-Sdk-Date": "20240101T000000Z", "Host": "127.0.0.1:8080"}
    body = b'{"config": {"audio_format": "pcm16k16bit", "property": "chinese_16k_general"}, "data": "AAAA"}'
    auth = sign("FAKEACCESSKEY0000001", "FAKESECRETKEY0123456789abcdefghijklmnopqr", "POST",
                f"/v1/{PID_A}/asr/short-audio", None, h, body)
    assert auth.endswith("Signature=27913ea8cca14bc4f9979a18d5bbce674944178bb21eb49760719584a80f0ac1")
    assert canonical_request("GET", "/a b", "b=2&a=1", {"Host": "h"}, ["host"], "x").startswith("GET\n/a%20b/\na=1&b=2\n")


def test_signed_request_gets_transcript(world):
    ok_transcript(world, signed_post(world, world["creds"]["a"]))


def test_sdk_with_endpoint(world):
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
    from huaweicloudsdksis.v1 import SisClient
    from huaweicloudsdksis.v1.model import Config, PostShortAudioReq, RecognizeShortAudioRequest

    c = world["creds"]["a"]
    audio_b64 = json.loads(world["body"])["data"]

    def client(sk):
        cred = BasicCredentials(c["access_key"], sk, c["project_id"])
        return SisClient.new_builder().with_credentials(cred).with_endpoint(world["server"].base).build()

    req = RecognizeShortAudioRequest(body=PostShortAudioReq(
        config=Config(audio_format="wav", _property="chinese_16k_common", digit_norm="no"), data=audio_b64))
    r = client(c["secret_key"]).recognize_short_audio(req)
    assert r.result.text == world["expected"]
    assert r.trace_id
    with pytest.raises(ClientRequestException) as e:
        client("x" * 40).recognize_short_audio(req)
    assert (e.value.status_code, e.value.error_code) == (401, "APIG.0301")
    assert e.value.error_msg == IAM + "verify aksk signature fail"
    assert e.value.request_id


SDK_BY_REGION = r"""
import json, sys
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdksis.v1 import SisClient
from huaweicloudsdksis.v1.region.sis_region import SisRegion
from huaweicloudsdksis.v1.model import Config, PostShortAudioReq, RecognizeShortAudioRequest
c = json.loads(sys.argv[1])
client = SisClient.new_builder().with_credentials(
    BasicCredentials(c["access_key"], c["secret_key"], c["project_id"])
).with_region(SisRegion.value_of("cn-north-4")).build()
r = client.recognize_short_audio(RecognizeShortAudioRequest(body=PostShortAudioReq(
    config=Config(audio_format="wav", _property="chinese_16k_common", digit_norm="no"), data=sys.stdin.read())))
print(r.result.text)
"""


def test_sdk_unmodified_through_region_env(world):
    env = {**os.environ, "HUAWEICLOUD_SDK_REGION_SIS_CN_NORTH_4": world["server"].base}
    r = subprocess.run([sys.executable, "-c", SDK_BY_REGION, json.dumps(world["creds"]["a"])],
                       input=json.loads(world["body"])["data"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == world["expected"]


def test_sdk_without_a_project_id_finds_it_through_iam(world):
    """The v3 SDK built with only AK/SK and a region asks IAM
    (`GET /v3/projects?name=REGION`, signed) for its project first (issue 16);
    an unmodified program does so with the IAM endpoint from its env."""
    script = SDK_BY_REGION.replace('c["secret_key"], c["project_id"]', 'c["secret_key"]')
    env = {**os.environ, "HUAWEICLOUD_SDK_REGION_SIS_CN_NORTH_4": world["server"].base,
           "HUAWEICLOUD_SDK_IAM_ENDPOINT": world["server"].base}
    data = json.loads(world["body"])["data"]
    r = subprocess.run([sys.executable, "-c", script, json.dumps(world["creds"]["a"])],
                       input=data, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == world["expected"]
    # an AK of a project with another name finds none for this region
    r = subprocess.run([sys.executable, "-c", script, json.dumps(world["creds"]["b"])],
                       input=data, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "Failed to get project id" in r.stderr, r.stderr


def signed_get(w, cred, path, query):
    port = w["server"].base.rsplit(":", 1)[1]
    h = {"X-Sdk-Date": sdk_date(), "Host": f"127.0.0.1:{port}"}
    h["Authorization"] = sign(cred["access_key"], cred["secret_key"], "GET", path, query, h, b"")
    return requests.get(w["server"].base + path + (f"?{query}" if query else ""), headers=h, timeout=10)


def test_iam_project_list_shows_only_the_callers_project(world):
    r = signed_get(world, world["creds"]["a"], "/v3/projects", "name=cn-north-4")
    assert r.status_code == 200, r.text
    projects = r.json()["projects"]
    assert [(p["id"], p["name"]) for p in projects] == [(PID_A, "cn-north-4")], projects
    # the other project of the same name (another domain) is never shown
    assert world["other_project"]["id"] not in r.text
    assert signed_get(world, world["creds"]["a"], "/v3/projects", "name=cn-east-3").json()["projects"] == []
    assert [p["id"] for p in signed_get(world, world["creds"]["b"], "/v3/projects", None).json()["projects"]] \
        == [PID_B]
    # a token scoped to the project
    tok = requests.post(world["server"].base + "/v3/auth/tokens", timeout=10, json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "alice", "password": PASSWORD, "domain": {"name": "acme"}}}},
        "scope": {"project": {"id": PID_A}}}}).headers["X-Subject-Token"]
    r = requests.get(world["server"].base + "/v3/projects?name=cn-north-4", headers={"X-Auth-Token": tok}, timeout=10)
    assert [p["id"] for p in r.json()["projects"]] == [PID_A], r.text
    # unsigned, badly signed
    assert requests.get(world["server"].base + "/v3/projects", timeout=10).status_code == 401
    bad = dict(world["creds"]["a"], secret_key="x" * 40)
    assert signed_get(world, bad, "/v3/projects", "name=cn-north-4").status_code == 401


# ---- security: each refusal is exact, and a good request still works after it ----

def refused_then_still_served(w, r, status, code, msg):
    assert_gateway(r, status, code, msg)
    ok_transcript(w, signed_post(w, w["creds"]["a"]))


def test_wrong_sk(world):
    bad = dict(world["creds"]["a2"], secret_key="y" * 40)
    refused_then_still_served(world, signed_post(world, bad), 401, "APIG.0301", IAM + "verify aksk signature fail")
    ok_transcript(world, signed_post(world, world["creds"]["a2"]))


def test_unknown_ak(world):
    bad = dict(world["creds"]["a"], access_key="NOSUCHKEY00000000000")
    refused_then_still_served(world, signed_post(world, bad), 401, "APIG.0301", IAM + "Get secretKey failed")


def test_revoked_ak(world):
    c = world["creds"]["revoke"]
    ok_transcript(world, signed_post(world, c))
    cli(world["env"], "credentials", "revoke", c["access_key"])
    refused_then_still_served(world, signed_post(world, c), 401, "APIG.0301", IAM + "Get secretKey failed")
    listed = {x["access_key"]: x for x in cli(world["env"], "credentials", "list")}
    assert listed[c["access_key"]]["revoked_at"] and listed[world["creds"]["a"]["access_key"]]["revoked_at"] is None
    assert all("secret" not in json.dumps(x) for x in listed.values())


def test_tampered_path(world):
    # signed for one API, sent to another of the same project
    r = signed_post(world, world["creds"]["a"], path=f"/v1/{PID_A}/asr/short-audio")
    ok_transcript(world, r)
    sent = signed_post(world, world["creds"]["a"], path=f"/v1/{PID_A}/rasr/short-stream",
                       tamper=lambda h, p, q, b: (h, f"/v1/{PID_A}/asr/short-audio", q, b))
    refused_then_still_served(world, sent, 401, "APIG.0301", IAM + "verify aksk signature fail")


def test_tampered_query(world):
    r = signed_post(world, world["creds"]["a"], query="lang=zh")
    ok_transcript(world, r)
    r = signed_post(world, world["creds"]["a"], query="lang=zh", tamper=lambda h, p, q, b: (h, p, "lang=en", b))
    refused_then_still_served(world, r, 401, "APIG.0301", IAM + "verify aksk signature fail")


def test_tampered_body(world):
    def tamper(h, p, q, b):
        d = json.loads(b)
        d["config"]["digit_norm"] = "yes"
        return h, p, q, json.dumps(d).encode()
    r = signed_post(world, world["creds"]["a"], tamper=tamper)
    refused_then_still_served(world, r, 401, "APIG.0301", IAM + "verify aksk signature fail")


@pytest.mark.parametrize("name,value", [("Content-Type", "application/json"), ("Host", "127.0.0.1:1"),
                                        ("User-Agent", "curl/8"), ("X-Project-Id", PID_B),
                                        ("X-Sdk-Date", None)])
def test_tampered_signed_header(world, name, value):
    def tamper(h, p, q, b):
        h = dict(h)
        h[name] = value if value is not None else sdk_date(-60)
        return h, p, q, b
    r = signed_post(world, world["creds"]["a"], tamper=tamper)
    refused_then_still_served(world, r, 401, "APIG.0301", IAM + "verify aksk signature fail")


def test_missing_signed_header(world):
    def tamper(h, p, q, b):
        h = dict(h)
        del h["X-Project-Id"]
        return h, p, q, b
    r = signed_post(world, world["creds"]["a"], tamper=tamper)
    refused_then_still_served(world, r, 401, "APIG.0301",
                              IAM + "verify aksk signature fail, signed header x-project-id not found")


def test_unsigned_extra_header_tolerated(world):
    ok_transcript(world, signed_post(world, world["creds"]["a"], extra_headers={"X-Extra": "anything",
                                                                                 "Enterprise-Project-Id": "0"}))


@pytest.mark.parametrize("offset", [16 * 60, -16 * 60])
def test_date_skew_16_minutes(world, offset):
    r = signed_post(world, world["creds"]["a2"], date_offset=offset)
    refused_then_still_served(world, r, 401, "APIG.0301", IAM + "calc ak sk signature fail:signature expired")
    # 14 minutes is inside the window
    ok_transcript(world, signed_post(world, world["creds"]["a2"], date_offset=offset * 14 // 16))


def test_missing_authorization(world):
    r = requests.post(world["server"].base + f"/v1/{PID_A}/asr/short-audio", data=world["body"],
                      headers={"Content-Type": "application/json"}, timeout=30)
    refused_then_still_served(world, r, 401, "APIG.0301", IAM + "x-auth-token not found")


@pytest.mark.parametrize("value", ["Bearer abc", "SDK-HMAC-SHA256", "SDK-HMAC-SHA256 Access=A, Signature=00",
                                   "SDK-HMAC-SHA256 Access=A, SignedHeaders=host, Signature=" + "z" * 64,
                                   "SDK-HMAC-SHA256 Access=A, SignedHeaders=x-sdk-date;host, Signature=" + "0" * 64])
def test_malformed_authorization(world, value):
    r = requests.post(world["server"].base + f"/v1/{PID_A}/asr/short-audio", data=world["body"],
                      headers={"Content-Type": "application/json", "Authorization": value,
                               "X-Sdk-Date": sdk_date()}, timeout=30)
    refused_then_still_served(world, r, 401, "APIG.0301", IAM + "the Authorization header is malformed")


def test_ak_of_another_project(world):
    # a valid signature by project B's key on project A's path
    r = signed_post(world, world["creds"]["b"], project=PID_A)
    refused_then_still_served(world, r, 403, "APIG.0302", "The IAM user is not authorized to access the API.")
    ok_transcript(world, signed_post(world, world["creds"]["b"], project=PID_B))


def test_oversize_headers(world):
    r = signed_post(world, world["creds"]["a"], extra_headers={"X-Big": "x" * 40_000})
    refused_then_still_served(world, r, 494, "APIG.0201", "Request headers too large.")


def test_burst_of_failures_locks_the_ak(world):
    c = world["creds"]["lock"]
    bad = dict(c, secret_key="z" * 40)
    for _ in range(5):
        assert_gateway(signed_post(world, bad), 401, "APIG.0301", IAM + "verify aksk signature fail")
    # now even the right secret is refused, for this AK only
    assert_gateway(signed_post(world, c), 401, "APIG.0301", IAM + "AK access failed to reach the limit, forbidden")
    ok_transcript(world, signed_post(world, world["creds"]["a"]))


# ---- tokens ----

def get_token(base, user="alice", domain="acme", password=PASSWORD, scope=None):
    scope = {"project": {"name": "cn-north-4"}} if scope is None else scope
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "password": password, "domain": {"name": domain}}}}, "scope": scope}}
    return requests.post(base + "/v3/auth/tokens", json=body,
                         headers={"Content-Type": "application/json;charset=utf8"}, timeout=30)


def token_post(w, token, project=PID_A):
    return requests.post(w["server"].base + f"/v1/{project}/asr/short-audio", data=w["body"],
                         headers={"Content-Type": "application/json", "X-Auth-Token": token}, timeout=60)


def test_token_issue_and_use(world):
    r = get_token(world["server"].base)
    assert r.status_code == 201, r.text
    tok = r.headers["X-Subject-Token"]
    t = r.json()["token"]
    assert t["project"]["id"] == PID_A and t["project"]["name"] == "cn-north-4"
    assert t["user"]["name"] == "alice" and t["user"]["domain"]["name"] == "acme"
    expires = time.mktime(time.strptime(t["expires_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert abs(expires - time.time() - 86400) < 120
    ok_transcript(world, token_post(world, tok))
    # scoped by project id as well
    r = get_token(world["server"].base, scope={"project": {"id": PID_B}})
    assert r.status_code == 201 and r.json()["token"]["project"]["id"] == PID_B


@pytest.mark.parametrize("kwargs,status", [({"password": "wrong-password"}, 401), ({"user": "nobody"}, 401),
                                            ({"domain": "globex"}, 401),
                                            ({"scope": {"project": {"id": "0" * 32}}}, 401)])
def test_token_refusals(world, kwargs, status):
    r = get_token(world["server"].base, **kwargs)
    assert r.status_code == status, r.text
    assert "X-Subject-Token" not in r.headers
    assert r.json()["error"]["code"] == status


def test_token_bad_bodies(world):
    base = world["server"].base
    for body in [b"{", b"{}", json.dumps({"auth": {"identity": {"methods": ["token"]}}}).encode()]:
        r = requests.post(base + "/v3/auth/tokens", data=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
    assert get_token(base).status_code == 201


def test_token_of_another_project(world):
    # bob's project lives in another domain; alice's cn-east-3 token on project A
    tok_b = get_token(world["server"].base, scope={"project": {"name": "cn-east-3"}}).headers["X-Subject-Token"]
    r = token_post(world, tok_b, project=PID_A)
    assert_gateway(r, 401, "SIS.0101", "token verification failed: the token belongs to another project")
    ok_transcript(world, token_post(world, tok_b, project=PID_B))
    tok_bob = get_token(world["server"].base, user="bob", domain="globex").headers["X-Subject-Token"]
    r = token_post(world, tok_bob, project=PID_A)
    assert_gateway(r, 401, "SIS.0101", "token verification failed: the token belongs to another project")
    ok_transcript(world, token_post(world, tok_bob, project=world["other_project"]["id"]))


def test_domain_scoped_token(world):
    r = get_token(world["server"].base, scope={"domain": {"name": "acme"}})
    assert r.status_code == 201 and "project" not in r.json()["token"]
    r2 = token_post(world, r.headers["X-Subject-Token"])
    assert_gateway(r2, 401, "SIS.0101", "token verification failed: the token is not scoped to a project")


def test_expired_token(world):
    r = get_token(world["short"].base)  # the other node issues 2-second tokens into the same store
    assert r.status_code == 201
    tok = r.headers["X-Subject-Token"]
    ok_transcript(world, token_post(world, tok))
    time.sleep(2.5)
    r2 = token_post(world, tok)
    assert r2.status_code == 401
    assert r2.json()["error_code"] == "APIG.0301"
    assert r2.json()["error_msg"] == IAM + "token expires, expires_at: " + r.json()["token"]["expires_at"]


def test_revoked_token(world):
    base = world["server"].base
    tok = get_token(base).headers["X-Subject-Token"]
    other = get_token(base).headers["X-Subject-Token"]
    ok_transcript(world, token_post(world, tok))
    r = requests.delete(base + "/v3/auth/tokens", headers={"X-Auth-Token": other, "X-Subject-Token": tok})
    assert r.status_code == 204, r.text
    assert_gateway(token_post(world, tok), 401, "APIG.0301", IAM + "decrypt token fail")
    ok_transcript(world, token_post(world, other))
    # bob may not revoke alice's token
    bob = get_token(base, user="bob", domain="globex").headers["X-Subject-Token"]
    r = requests.delete(base + "/v3/auth/tokens", headers={"X-Auth-Token": bob, "X-Subject-Token": other})
    assert r.status_code == 404
    ok_transcript(world, token_post(world, other))


def test_garbage_token(world):
    assert_gateway(token_post(world, "sis1.not-a-token"), 401, "APIG.0301", IAM + "decrypt token fail")


def test_deleted_user_tokens_stop_working(world):
    base = world["server"].base
    cli(world["env"], "users", "create", "--domain", "acme", "--name", "carol", stdin=PASSWORD + "\n")
    tok = get_token(base, user="carol").headers["X-Subject-Token"]
    ok_transcript(world, token_post(world, tok))
    cli(world["env"], "users", "delete", "--domain", "acme", "--name", "carol")
    assert_gateway(token_post(world, tok), 401, "APIG.0301", IAM + "decrypt token fail")


def test_password_lock(world):
    base = world["server"].base
    cli(world["env"], "users", "create", "--domain", "acme", "--name", "dave", stdin=PASSWORD + "\n")
    for _ in range(5):
        assert get_token(base, user="dave", password="wrong-password").status_code == 401
    r = get_token(base, user="dave")
    assert r.status_code == 401 and "locked" in r.json()["error"]["message"]
    assert get_token(base).status_code == 201  # alice is not affected


# ---- WebSocket upgrade ----

def ws_url(w, project=PID_A, mode="short-stream"):
    return w["server"].base.replace("http://", "ws://") + f"/v1/{project}/rasr/{mode}"


def ws_sdk_style_headers(w, cred, project=PID_A, mode="short-stream"):
    # as the official WS SDK: sign an empty-body GET of the https URL with only
    # host and X-Sdk-Date, then drop host (the WS library writes its own).
    host = w["server"].base.split("//", 1)[1]
    h = {"X-Sdk-Date": sdk_date(), "host": host}
    h["Authorization"] = sign(cred["access_key"], cred["secret_key"], "GET",
                              f"/v1/{project}/rasr/{mode}", None, h, b"")
    del h["host"]
    return h


def test_ws_upgrade_signed_like_the_sdk(world):
    ws = websocket.create_connection(ws_url(world), header=ws_sdk_style_headers(world, world["creds"]["a"]), timeout=10)
    assert ws.getstatus() == 101
    ws.close()


def test_ws_upgrade_with_token(world):
    tok = get_token(world["server"].base).headers["X-Subject-Token"]
    ws = websocket.create_connection(ws_url(world, mode="sentence-stream"), header={"X-Auth-Token": tok}, timeout=10)
    assert ws.getstatus() == 101
    ws.close()


@pytest.mark.parametrize("case", ["none", "bad-sig", "other-project", "bad-token"])
def test_ws_upgrade_refused_before_upgrade(world, case):
    headers = {
        "none": {},
        "bad-sig": ws_sdk_style_headers(world, dict(world["creds"]["a2"], secret_key="q" * 40)),
        "other-project": ws_sdk_style_headers(world, world["creds"]["b"], project=PID_A),
        "bad-token": {"X-Auth-Token": "sis1.nope"},
    }[case]
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url(world), header=headers, timeout=10)
    status = 403 if case == "other-project" else 401
    assert e.value.status_code == status
    body = json.loads(e.value.resp_body)
    assert body["error_code"] == ("APIG.0302" if status == 403 else "APIG.0301")
    ws = websocket.create_connection(ws_url(world), header=ws_sdk_style_headers(world, world["creds"]["a"]), timeout=10)
    ws.close()


def test_ws_upgrade_with_a_token_subprotocol(world):
    """A browser cannot set X-Auth-Token on a WebSocket (the console): its
    token comes as the subprotocol `sis-token.<token>` beside `sis`; the
    upgrade answers `sis`, never the token."""
    tok = get_token(world["server"].base).headers["X-Subject-Token"]
    ws = websocket.create_connection(ws_url(world, mode="continue-stream"), subprotocols=["sis", f"sis-token.{tok}"],
                                     timeout=10)
    assert ws.getstatus() == 101
    assert ws.getsubprotocol() == "sis"
    assert tok not in json.dumps(dict(ws.getheaders()))
    ws.send(json.dumps({"command": "START", "config": {"audio_format": "pcm16k16bit",
                                                       "property": "chinese_16k_general"}}))
    assert json.loads(ws.recv())["resp_type"] == "START"
    ws.close()


@pytest.mark.parametrize("case", ["garbage", "expired", "other-project"])
def test_ws_token_subprotocol_refused_as_the_header_is(world, case):
    if case == "expired":
        tok = get_token(world["short"].base).headers["X-Subject-Token"]
        time.sleep(2.5)
    elif case == "other-project":
        tok = get_token(world["server"].base, scope={"project": {"name": "cn-east-3"}}).headers["X-Subject-Token"]
    else:
        tok = "sis1.nope"
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url(world), subprotocols=["sis", f"sis-token.{tok}"], timeout=10)
    with pytest.raises(websocket.WebSocketBadStatusException) as h:
        websocket.create_connection(ws_url(world), header={"X-Auth-Token": tok}, timeout=10)
    assert e.value.status_code == h.value.status_code == 401
    by_protocol, by_header = json.loads(e.value.resp_body), json.loads(h.value.resp_body)
    assert (by_protocol["error_code"], by_protocol["error_msg"]) == (by_header["error_code"], by_header["error_msg"])


def test_rest_does_not_take_a_token_subprotocol(world):
    tok = get_token(world["server"].base).headers["X-Subject-Token"]
    r = requests.post(world["server"].base + f"/v1/{PID_A}/asr/short-audio", data=world["body"],
                      headers={"Content-Type": "application/json", "Sec-WebSocket-Protocol": f"sis, sis-token.{tok}"})
    assert_gateway(r, 401, "APIG.0301", IAM + "x-auth-token not found")


# ---- nothing secret in the logs (runs last in this module) ----

def test_zz_no_secret_in_logs(world):
    logs = world["log"].read_text() + world["short_log"].read_text()
    assert "authentication refused" in logs  # the log is really being written
    secrets = [c["secret_key"] for c in world["creds"].values()] + [PASSWORD, world["key"]]
    for s in secrets:
        assert s not in logs
    assert "sis1." not in logs  # no token
    # the operator commands print the secret only at creation
    out = subprocess.run([SISD, "credentials", "list"], env={**os.environ, **world["env"]},
                         capture_output=True, text=True).stdout
    for c in world["creds"].values():
        assert c["secret_key"] not in out
    # and the store holds no secret key or password in clear
    db = (world["dir"] / "data" / "sisd.db").read_bytes()
    wal = world["dir"] / "data" / "sisd.db-wal"
    db += wal.read_bytes() if wal.exists() else b""
    for s in secrets:
        assert s.encode() not in db
