"""An independent SDK-HMAC-SHA256 signer, written from SIS-API.md §2.2, so the
tests can build exact, tampered and SDK-style requests (the official SDK hides
its signer)."""

import hashlib
import hmac
import time
from urllib.parse import quote, unquote


def _enc(s: str) -> str:
    return quote(s, safe="-_.~")


def canonical_request(method, path, query, headers, signed, body_hash):
    segs = [_enc(unquote(s)) for s in path.split("/")]
    uri = "/".join(segs)
    if not uri.endswith("/"):
        uri += "/"
    pairs = []
    for p in (query or "").split("&"):
        if p:
            k, _, v = p.partition("=")
            pairs.append((_enc(unquote(k)), _enc(unquote(v))))
    q = "&".join(f"{k}={v}" for k, v in sorted(pairs))
    lower = {k.lower(): v for k, v in headers.items()}
    hdrs = "".join(f"{h}:{lower[h].strip()}\n" for h in signed)
    return "\n".join([method, uri, q, hdrs, ";".join(signed), body_hash])


def sdk_date(offset_s=0):
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + offset_s))


def sign(ak, sk, method, path, query, headers, body=b"", signed=None):
    """Returns the Authorization value for `headers` (which must already hold
    X-Sdk-Date and Host); `signed` defaults to every header given. With an
    `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` header the body is not signed."""
    signed = sorted(signed or [h.lower() for h in headers])
    lower = {k.lower(): v for k, v in headers.items()}
    if lower.get("x-sdk-content-sha256") == "UNSIGNED-PAYLOAD":
        body_hash = "UNSIGNED-PAYLOAD"
    else:
        body_hash = hashlib.sha256(body).hexdigest()
    cr = canonical_request(method, path, query, headers, signed, body_hash)
    date = {k.lower(): v for k, v in headers.items()}["x-sdk-date"]
    sts = f"SDK-HMAC-SHA256\n{date}\n{hashlib.sha256(cr.encode()).hexdigest()}"
    sig = hmac.new(sk.encode(), sts.encode(), hashlib.sha256).hexdigest()
    return f"SDK-HMAC-SHA256 Access={ak}, SignedHeaders={';'.join(signed)}, Signature={sig}"
