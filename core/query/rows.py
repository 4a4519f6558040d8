"""Rows of the events table as the query service reads them (the store's COLUMNS layout).

Indexes into a row follow ``core/store/reads.py`` COLUMNS: 1 aggregate_id,
2 aggregate_type, 3 event_type, 4 event_version, 6 stream_id, 8 global_position,
9 transaction_id, 11 payload, 12 metadata (text), 16 compression, 17 encryption,
19 original_size.
"""

from __future__ import annotations

import json
from typing import Any

from .. import codecs
from ..serialization import dumps


def columns() -> str:
    from ..store.reads import COLUMNS  # the row layout decode_row reads

    return COLUMNS


def _document(ordinal: int, row: Any, data: str) -> str:

    return ("{" + f'"ord":{ordinal},"event_data":{data},"metadata":{row[12]},'
            f'"event_type":{json.dumps(row[3])},"aggregate_id":{json.dumps(row[1])},'
            f'"aggregate_type":{json.dumps(row[2])},"stream_id":{json.dumps(row[6])},'
            f'"event_version":{int(row[4])}' + "}")


def decoded_documents(service: Any, rows: list[Any]) -> list[tuple[int, str]]:
    """(ordinal, JSON document) of the rows whose data is a payload (compressed or encrypted)."""
    out = []
    for i, row in enumerate(rows):
        if row[11] is None:
            continue
        if row[17] == "none":  # compressed only: the exact stored JSON text
            data = codecs.decompress(row[16], bytes(row[11]), limit=row[19]).decode()
        else:  # encrypted (privacy): the decoded data, as decode_row gives it
            data = dumps(service.store.decode_row(row).event_data)
        out.append((i, _document(i, row, data)))
    return out
