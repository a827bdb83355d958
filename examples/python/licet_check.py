#!/usr/bin/env python3
"""Licensing a Python program with licet through its C ABI and ctypes (docs/capi.md).

    python3 licet_check.py LIBRARY SERVER DATA_DIR PUBLIC_KEY PRODUCT

LIBRARY is liblicet_capi.so (licet_capi.dll on Windows, liblicet_capi.dylib on macOS). The
number must have been entered on this host already (by licet_set_number, or `licet-agent
set-number`, with the same DATA_DIR)."""

import ctypes
import json
import sys


def load(path):
    lib = ctypes.CDLL(path)
    lib.licet_agent_new.argtypes = [ctypes.c_char_p]
    lib.licet_agent_new.restype = ctypes.c_void_p
    lib.licet_last_error.argtypes = []
    lib.licet_last_error.restype = ctypes.c_void_p
    lib.licet_check.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.licet_check.restype = ctypes.c_int
    lib.licet_string_free.argtypes = [ctypes.c_void_p]
    lib.licet_string_free.restype = None
    lib.licet_agent_free.argtypes = [ctypes.c_void_p]
    lib.licet_agent_free.restype = None
    return lib


def take_string(lib, pointer):
    """The text of a string the library returned, which is then freed."""
    if not pointer:
        return None
    try:
        return ctypes.string_at(pointer).decode("utf-8")
    finally:
        lib.licet_string_free(pointer)


def check(lib, agent, product, feature=None):
    """(code, the answer's JSON object)."""
    out = ctypes.c_void_p()
    code = lib.licet_check(agent, product.encode(), feature.encode() if feature else None, ctypes.byref(out))
    text = take_string(lib, out.value)
    return code, json.loads(text) if text else {"name": "internal_error", "message": "no answer"}


def main():
    library, server, data_dir, key, product = sys.argv[1:6]
    lib = load(library)
    config = json.dumps({"servers": server, "data_dir": data_dir, "trusted_keys": [key]})
    agent = lib.licet_agent_new(config.encode())
    if not agent:
        print("licet_agent_new:", take_string(lib, lib.licet_last_error()), file=sys.stderr)
        return 1
    try:
        code, answer = check(lib, agent, product)
        if code != 0:
            print(f"{product}: {code} {answer['name']}: {answer['message']}")
            return 1
        print(f"{product}: licensed ({answer['kind']}), offline until {answer['lease_until']}")
        code, answer = check(lib, agent, product, "telepathy")
        print(f"telepathy: {code} {answer.get('name', 'licensed')}")
        return 0
    finally:
        lib.licet_agent_free(agent)


if __name__ == "__main__":
    sys.exit(main())
