"""The request bodies of POST /infer/hate-speech (one text) and POST /infer/hate-speech/batch (1 to
MAX_BATCH_TEXTS texts): from API Gateway's proxy event to the texts to score.

Every way a body can be wrong becomes a RequestError with the HTTP status and an `issue` that says
what is wrong and how to fix it, in the words of the original API's error key. A batch's texts
pass the single text's checks one by one, with the same statuses (413 too long, 422 not a string,
empty, nothing to classify); the issue names the first bad one by its index (`texts[3]`).
"""

from __future__ import annotations

import base64
import binascii
import json

from infer.text import classifiable

EXAMPLE = '{"text": "..."}'
BATCH_EXAMPLE = '{"texts": ["...", "..."]}'
# The batch's bound: one request's work stays near a hundred single requests' (seconds at worst,
# 100 texts of MaxTextChars each, far inside the function's timeout).
MAX_BATCH_TEXTS = 100
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
    payload = _read_object(body, is_base64_encoded, EXAMPLE)
    if "text" not in payload:
        raise RequestError(422, f'The body has no "text" field: send {EXAMPLE}.')
    return _checked_text(payload["text"], '"text"', max_chars)


def read_texts(
    body: str | None, is_base64_encoded: bool | None, max_chars: int, max_texts: int = MAX_BATCH_TEXTS
) -> list[str]:
    """The `texts` field of a JSON body, 1 to `max_texts` texts each checked as read_text checks
    one; raises RequestError (400, 413 or 422) naming the first bad text by its index otherwise."""
    payload = _read_object(body, is_base64_encoded, BATCH_EXAMPLE)
    if "texts" not in payload:
        # The single route's body sent here by mistake: say which route takes it.
        hint = ' ("text", one string, is POST /infer/hate-speech\'s field)' if "text" in payload else ""
        raise RequestError(422, f'The body has no "texts" field{hint}: send {BATCH_EXAMPLE}.')
    texts = payload["texts"]
    if not isinstance(texts, list):
        raise RequestError(
            422, f'"texts" is {_json_type(texts)}: send the texts to classify as a JSON array of strings.'
        )
    if not texts:
        raise RequestError(422, f'"texts" is an empty array: send 1 to {max_texts} texts to classify.')
    if len(texts) > max_texts:
        raise RequestError(
            422,
            f'"texts" holds {len(texts)} texts; a batch takes 1 to {max_texts}: '
            "split it into several requests.",
        )
    return [_checked_text(text, f"texts[{index}]", max_chars) for index, text in enumerate(texts)]


def _read_object(body: str | None, is_base64_encoded: bool | None, example: str) -> dict:
    """The body's JSON object (base64 decoded first when marked so); RequestError otherwise.
    `example` is the body the issues show (the route's)."""
    if body is None or body == "":
        raise RequestError(422, f"The request has no body: send a JSON object like {example}.")
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
            raise RequestError(422, f"The request has no body: send a JSON object like {example}.")
    try:
        payload = json.loads(body)
    except RecursionError:
        raise RequestError(
            400, f"The body is nested too deeply to parse: send a JSON object like {example}."
        ) from None
    except ValueError:
        raise RequestError(
            400, f"The body is not valid JSON: send a JSON object like {example}, encoded as UTF-8."
        ) from None
    if not isinstance(payload, dict):
        raise RequestError(422, f"The body is {_json_type(payload)}, not a JSON object: send {example}.")
    return payload


def _checked_text(text: object, name: str, max_chars: int) -> str:
    """One text to classify, checked; `name` is how the issues call it ('"text"', 'texts[3]')."""
    if not isinstance(text, str):
        raise RequestError(422, f"{name} is {_json_type(text)}: send the text to classify as a JSON string.")
    if not text.strip():
        raise RequestError(
            422, f"{name} is empty or only white space: send the text to classify.", text_chars=len(text)
        )
    if len(text) > max_chars:
        raise RequestError(
            413,
            f"{name} is {len(text)} characters long; the limit is {max_chars}: "
            "shorten it or split it into several requests.",
            text_chars=len(text),
        )
    # After the length check, so this scan never reads more than max_chars characters.
    if not classifiable(text):
        raise RequestError(422, NOTHING_TO_CLASSIFY.replace('"text"', name, 1), text_chars=len(text))
    return text
