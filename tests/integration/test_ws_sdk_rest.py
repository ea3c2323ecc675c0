"""The REST clients of the WebSocket-generation SDK (../shared/clients,
issue 16), unchanged, with AK/SK: `AsrCustomizationClient` (short audio, and
a recorded-file job through `submit_job` / `get_long_response`) and
`HotWordClient` (create, update, list, show, delete, and the vocabulary used
by a recognition)."""

import shutil
import sys
import time
from urllib.parse import quote

import pytest

from conftest import SHARED, Server, sis_store

sys.path.insert(0, str(SHARED / "clients"))
from huaweicloud_sis.bean.asr_request import AsrCustomLongRequest, AsrCustomShortRequest  # noqa: E402
from huaweicloud_sis.bean.hot_word_request import HotWordRequest  # noqa: E402
from huaweicloud_sis.client.asr_client import AsrCustomizationClient  # noqa: E402
from huaweicloud_sis.client.hot_word_client import HotWordClient  # noqa: E402
from huaweicloud_sis.utils import io_utils  # noqa: E402

PID = "7f6e5d4c3b2a19087f6e5d4c3b2a1908"


@pytest.fixture(scope="module")
def rest(models_dir, tmp_path_factory, heldout):
    d = tmp_path_factory.mktemp("ws-sdk-rest")
    env, cred = sis_store(d, PID)
    files = d / "files"
    files.mkdir()
    server = Server([models_dir], d / "data", extra=["--auth", "sis", "--no-probe", "--job-files-dir", str(files)],
                    log=d / "sisd.log", env=env)
    root, rows = heldout
    yield dict(server=server, cred=cred, root=root, rows=rows, files=files)
    server.stop()


def args(rest):
    return dict(ak=rest["cred"]["access_key"], sk=rest["cred"]["secret_key"], region="cn-north-4",
                project_id=PID, service_endpoint=rest["server"].base)


def test_asr_customization_client_short_audio_and_a_job(rest):
    client = AsrCustomizationClient(**args(rest))
    r = [x for x in rest["rows"] if x["kind"] == "sentence"][0]
    wav = rest["root"] / "16k" / f"{r['id']}.wav"
    req = AsrCustomShortRequest("wav", "chinese_16k_common", io_utils.encode_file(str(wav)))
    req.set_digit_norm("no")
    req.set_need_word_info("yes")
    result = client.get_short_response(req)
    assert result["result"]["text"] == r["text"], result
    assert "".join(w["word"] for w in result["result"]["word_info"]) == r["text"]
    # a job of the same file, through a local file URL
    shutil.copy(wav, rest["files"] / "a.wav")
    long_req = AsrCustomLongRequest("auto", "chinese_16k_common", "file://" + quote(str(rest["files"] / "a.wav")))
    long_req.set_digit_norm("no")
    job_id = client.submit_job(long_req)
    deadline = time.time() + 60
    while True:
        doc = client.get_long_response(job_id)
        if doc["status"] in ("FINISHED", "ERROR") or time.time() > deadline:
            break
        time.sleep(0.3)
    assert doc["status"] == "FINISHED", doc
    assert [s["result"]["text"] for s in doc["segments"]] == [r["text"]], doc


def test_hot_word_client_every_operation(rest):
    client = HotWordClient(**args(rest))
    req = HotWordRequest("sdk_words", ["张伟", "华为SIS"])
    req.set_description("from the WS SDK")
    req.set_language("chinese_mandarin")
    created = client.create(req)
    vid = created["vocabulary_id"]
    shown = client.query_by_vocabulary_id(vid)
    assert shown["name"] == "sdk_words" and shown["contents"] == ["张伟", "华为SIS"], shown
    assert any(v["vocabulary_id"] == vid for v in client.query_list()["result"])
    client.update(HotWordRequest("sdk_words", ["李娜"]), vid)
    assert client.query_by_vocabulary_id(vid)["contents"] == ["李娜"]
    # the vocabulary is used by a recognition through the same SDK
    r = [x for x in rest["rows"] if x["kind"] == "number"][0]
    asr = AsrCustomizationClient(**args(rest))
    short = AsrCustomShortRequest("wav", "chinese_16k_common",
                                  io_utils.encode_file(str(rest["root"] / "16k" / f"{r['id']}.wav")))
    short.set_digit_norm("no")
    short.set_vocabulary_id(vid)
    assert asr.get_short_response(short)["result"]["text"] == r["text"]
    client.delete(vid)
    assert not any(v["vocabulary_id"] == vid for v in client.query_list()["result"])
