"""The request body of POST /infer/hate-speech: from API Gateway's proxy event to the text to score.

Every way a body can be wrong becomes a RequestError with the HTTP status and an `issue` that says
what is wrong and how to fix it, in the words of the original API's error key.
"""

from __future__ import annotations

import base64
import binascii
import json

from infer.text import classifiable

EXAMPLE = '{"text": "..."}'
# 422 for a text with nothing a model can read (infer.text.classifiable): every entry point that takes
# texts (the Lambda, python -m infer.predict) goes through read_text, so they all refuse the same texts.
NOTHING_TO_CLASSIFY = (
    '"text" has no letters, digits, punctuation or emoji to classify, only invisible characters '
    "(control, format or zero-width characters, lone surrogates): send the text to classify."
)


class RequestError(Exception):
    """A request the API refuses: `status` and `issue` go back to the client as they are."""

    def __init__(self, status: int, issue: str, text_chars: int | None = None) -> None:
        super().__init__(issue)
        self.status = status
        self.issue = issue
        self.text_chars = text_chars  # length of the text when one was found (for the request log)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def read_text(body: str | None, is_base64_encoded: bool | None, max_chars: int) -> str:
    """The `text` field of a JSON body, checked; raises RequestError (400, 413 or 422) otherwise."""
    if body is None or body == "":
        raise RequestError(422, f"The request has no body: send a JSON object like {EXAMPLE}.")
    if is_base64_encoded:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(
                400, "The body is marked base64-encoded but is not valid base64: send the JSON as it is."
            ) from None
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RequestError(400, "The body is not UTF-8 text: encode the JSON body as UTF-8.") from None
        if body == "":
            raise RequestError(422, f"The request has no body: send a JSON object like {EXAMPLE}.")
    try:
        payload = json.loads(body)
    except RecursionError:
        raise RequestError(
            400, f"The body is nested too deeply to parse: send a JSON object like {EXAMPLE}."
        ) from None
    except ValueError:
        raise RequestError(
            400, f"The body is not valid JSON: send a JSON object like {EXAMPLE}, encoded as UTF-8."
        ) from None
    if not isinstance(payload, dict):
        raise RequestError(422, f"The body is {_json_type(payload)}, not a JSON object: send {EXAMPLE}.")
    if "text" not in payload:
        raise RequestError(422, f'The body has no "text" field: send {EXAMPLE}.')
    text = payload["text"]
    if not isinstance(text, str):
        raise RequestError(422, f'"text" is {_json_type(text)}: send the text to classify as a JSON string.')
    if not text.strip():
        raise RequestError(
            422, '"text" is empty or only white space: send the text to classify.', text_chars=len(text)
        )
    if len(text) > max_chars:
        raise RequestError(
            413,
            f'"text" is {len(text)} characters long; the limit is {max_chars}: '
            "shorten it or split it into several requests.",
            text_chars=len(text),
        )
    # After the length check, so this scan never reads more than max_chars characters.
    if not classifiable(text):
        raise RequestError(422, NOTHING_TO_CLASSIFY, text_chars=len(text))
    return text
