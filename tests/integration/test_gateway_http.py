"""HTTP/1.1 framing at the local gateway, byte by byte over a raw socket: what aiohttp's parser
refuses (malformed chunk sizes, Content-Length beside Transfer-Encoding) is API Gateway's 400
{"message": "Bad Request"}, and an encoded slash (%2F) is part of its path segment, never a
separator, so it reaches no route."""

from __future__ import annotations

import json
import socket

import pytest

from emulator.functions import Alias
from emulator.gateway import Gateway
from stack import load_settings

pytestmark = pytest.mark.integration

API_KEY = "http-test-key-0123456789abcdef"
BODY = json.dumps({"text": "what a lovely morning"})
ROUTE = "/v1/infer/hate-speech"


@pytest.fixture(scope="module")
def gateway(version):
    """A gateway over the shared version, usage plan as samconfig's default."""
    gw = Gateway(load_settings(), Alias("live", version), API_KEY, None).start()
    yield gw
    gw.stop(stop_functions=False)


def exchange(gateway: Gateway, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes on a fresh connection; the answer's status, headers (lower-cased names) and
    body, read until the gateway closes the connection."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    assert status_line.startswith("HTTP/1.1 ")
    return int(status_line.split()[1]), headers, body[: int(headers.get("content-length", len(body)))]


def request_head(path: str = ROUTE, **headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"x-api-key: {API_KEY}", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


SIZE = f"{len(BODY):x}"  # the body's length in hex, as a chunk-size line spells it


def chunked(size_line: str) -> bytes:
    """The JSON body as one chunk whose size line is `size_line`, then the last chunk."""
    return size_line.encode() + b"\r\n" + BODY.encode() + b"\r\n0\r\n\r\n"


def test_a_well_formed_chunked_body_reaches_the_function(gateway):
    """The baseline of the cases below: hex size, an extension after ';' -> 200 from the model."""
    for size_line in (SIZE, SIZE + ";name=value"):
        status, _, body = exchange(gateway, request_head(Transfer_Encoding="chunked") + chunked(size_line))
        assert status == 200, size_line
        assert "label" in json.loads(body)


@pytest.mark.parametrize("size_line", [f"0x{SIZE}", f"+{SIZE}", f"{SIZE[0]}_{SIZE[1:]}", f"-{SIZE}", "zz"])
def test_a_malformed_chunk_size_is_400_bad_request(gateway, size_line):
    """0x21, +21, 2_1 (what Python's int(..., 16) accepts), a sign or no hex digit at all: not
    RFC 9112's chunk-size (1*HEXDIG) -> 400 {"message": "Bad Request"}, the connection closed."""
    status, headers, body = exchange(gateway, request_head(Transfer_Encoding="chunked") + chunked(size_line))
    assert (status, json.loads(body)) == (400, {"message": "Bad Request"})
    assert headers["x-amzn-errortype"] == "BadRequestException"
    assert headers["connection"] == "close"


def test_content_length_beside_transfer_encoding_is_400(gateway):
    """Both framings at once (a request-smuggling shape) -> 400 rather than a guess."""
    head = request_head(Transfer_Encoding="chunked", Content_Length=str(len(BODY)))
    status, _, body = exchange(gateway, head + chunked(SIZE))
    assert (status, json.loads(body)) == (400, {"message": "Bad Request"})


def test_a_content_length_that_is_not_a_number_is_400(gateway):
    """Content-Length: +34 (a sign) -> 400 Bad Request."""
    status, _, body = exchange(gateway, request_head(Content_Length=f"+{len(BODY)}") + BODY.encode())
    assert (status, json.loads(body)) == (400, {"message": "Bad Request"})


@pytest.mark.parametrize(
    "path", ["/v1/infer%2Fhate-speech", "/v1/infer%2fhate-speech", "/v1/infer/hate-speech%2F"]
)
def test_an_encoded_slash_is_no_path_separator(gateway, path):
    """/v1/infer%2Fhate-speech is one segment "infer/hate-speech", not the route's two ->
    403 {"message": "Missing Authentication Token"}, as for any path the API does not serve."""
    status, headers, body = exchange(
        gateway, request_head(path, Content_Length=str(len(BODY))) + BODY.encode()
    )
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})
    assert headers["x-amzn-errortype"] == "IncompleteSignatureException"


def test_an_encoded_slash_in_the_stage_is_outside_the_stage(gateway):
    """/v1%2Finfer/hate-speech names no stage -> 403 {"message": "Forbidden"}."""
    head = request_head("/v1%2Finfer/hate-speech", Content_Length=str(len(BODY)))
    status, _, body = exchange(gateway, head + BODY.encode())
    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})


def test_other_encoded_characters_are_decoded_before_routing(gateway):
    """%68 is "h": /v1/infer/%68ate-speech is the route, as API Gateway decodes it."""
    head = request_head("/v1/infer/%68ate-speech", Content_Length=str(len(BODY)))
    status, _, body = exchange(gateway, head + BODY.encode())
    assert status == 200 and "label" in json.loads(body)


def test_expect_100_continue_is_answered_before_the_body(gateway):
    """Expect: 100-continue -> "100 Continue" first (curl waits for it), then the answer."""
    head = request_head(Content_Length=str(len(BODY)), Expect="100-continue")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(head)
        interim = sock.recv(4096)
        sock.sendall(BODY.encode())
        final = b""
        while chunk := sock.recv(65536):
            final += chunk
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert final.startswith(b"HTTP/1.1 200 ")


def test_expect_100_continue_over_the_payload_limit_is_413_without_continue(gateway):
    """A declared body over 10 MB: no 100 Continue, the 413 at once; the body is never sent."""
    head = request_head(Content_Length=str(11 * 1024 * 1024), Expect="100-continue")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(head)
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"HTTP content length exceeded 10485760 bytes." in answer
