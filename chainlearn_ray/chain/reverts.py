"""Decoding of contract revert data into :class:`ContractRevertError` (custom errors by ABI)."""

from __future__ import annotations

import ast
import contextlib
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address

from chainlearn_ray.errors import ContractRevertError

logger = logging.getLogger(__name__)

_ERROR_STRING: Final = keccak(text="Error(string)")[:4]
_PANIC: Final = keccak(text="Panic(uint256)")[:4]
_HEX_DATA = re.compile(r"0x[0-9a-fA-F]{8,}")
_BYTES_LITERAL = re.compile(r"b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\"")


def _canonical_type(item: Mapping[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in item.get("components", ()))
        return f"({inner}){kind[5:]}"
    return kind


class RevertDecoder:
    """Maps 4-byte selectors of an ABI's custom errors to their names and argument types."""

    def __init__(self, abi: Iterable[Mapping[str, Any]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str]]] = {}
        for item in abi:
            if item.get("type") != "error":
                continue
            types = [_canonical_type(arg) for arg in item.get("inputs", ())]
            signature = f"{item['name']}({','.join(types)})"
            self._errors[keccak(text=signature)[:4]] = (str(item["name"]), types)

    def decode(self, data: bytes) -> ContractRevertError:
        """Turn raw revert data into a :class:`ContractRevertError`."""
        selector, payload = data[:4], data[4:]
        if selector in self._errors:
            name, types = self._errors[selector]
            try:
                args = tuple(abi_decode(types, payload))
            except Exception:
                args = ()
            return ContractRevertError(name, _plain(types, args))
        if selector == _ERROR_STRING:
            (reason,) = abi_decode(["string"], payload)
            return ContractRevertError("Error", (reason,), f"contract reverted: {reason}")
        if selector == _PANIC:
            (code,) = abi_decode(["uint256"], payload)
            return ContractRevertError("Panic", (code,), f"contract panicked with code {code:#x}")
        return ContractRevertError("unknown", (data.hex(),), "contract reverted without a reason")

    def from_exception(self, exc: BaseException) -> ContractRevertError | None:
        """Decode the revert carried by a Web3/eth-tester exception, or ``None`` if it has none."""
        data = _revert_bytes(exc)
        if data is None:
            text = str(exc).lower()
            if "revert" in text or "execution reverted" in text:
                return ContractRevertError("unknown", (), f"contract reverted: {exc}")
            return None
        return self.decode(data)


def _plain(types: list[str], values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Decoded arguments as plain Python values, addresses checksummed."""
    return tuple(
        to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=False)
    )


def _revert_bytes(exc: BaseException) -> bytes | None:
    """Raw revert data found on an exception from web3, eth-tester or a JSON-RPC node."""
    candidates: list[Any] = [getattr(exc, "data", None)]
    candidates.extend(getattr(exc, "args", ()) or ())
    for candidate in candidates:
        found = _extract(candidate)
        if found is not None:
            return found
    return None


def _extract(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value) if len(value) >= 4 else None
    if isinstance(value, Mapping):
        for key in ("data", "result", "error", "message"):
            found = _extract(value.get(key))
            if found is not None:
                return found
        return None
    if isinstance(value, str):
        literal = _BYTES_LITERAL.search(value)  # eth-tester: "execution reverted: b'...'"
        if literal:
            with contextlib.suppress(ValueError, SyntaxError):
                raw = ast.literal_eval(literal.group(0))
                if isinstance(raw, bytes) and len(raw) >= 4:
                    return raw
        match = _HEX_DATA.search(value)
        if match and len(match.group(0)) % 2 == 0:
            return bytes.fromhex(match.group(0)[2:])
    return None
