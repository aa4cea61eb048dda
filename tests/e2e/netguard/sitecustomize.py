"""Blocks every network connection except loopback, in any Python process that starts with
this folder on ``PYTHONPATH`` (Python imports ``sitecustomize`` at start-up).

Used by the end-to-end tests to prove the app needs no network: the Streamlit server and the
training jobs it spawns (which inherit the environment) run with it. Each refused attempt is
appended to the file named by ``LATENTBRAIN_NETGUARD_LOG`` and fails with ``ENETUNREACH``, as an
unplugged machine would.
"""

import errno
import ipaddress
import os
import socket
import traceback

_LOG = os.environ.get("LATENTBRAIN_NETGUARD_LOG")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _is_local(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host).strip("[]").split("%")[0]
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a name other than localhost would need DNS: not local
    return address.is_loopback or address.is_unspecified


def _refuse(what: str, target) -> None:
    if _LOG:
        with open(_LOG, "a") as log:
            log.write(f"pid {os.getpid()} {what} {target!r}\n{''.join(traceback.format_stack(limit=8))}\n")
    raise OSError(errno.ENETUNREACH, f"network blocked by the test harness: {what} {target!r}")


def _guard(method_name):
    original = getattr(socket.socket, method_name)

    def guarded(self, address, *args):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            _refuse(method_name, address)
        return original(self, address, *args)

    guarded.__name__ = method_name
    return guarded


for _name in ("connect", "connect_ex"):
    setattr(socket.socket, _name, _guard(_name))

_original_sendto = socket.socket.sendto


def _sendto(self, data, *args):
    address = args[-1]
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
        _refuse("sendto", address)
    return _original_sendto(self, data, *args)


socket.socket.sendto = _sendto
_original_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, *args, **kwargs):
    if host is not None and not _is_local(host):
        _refuse("getaddrinfo", host)
    return _original_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo
