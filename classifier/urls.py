"""URL normalisation: the key that joins the URLs Wikipedia articles cite with the pages of a crawl.

A citation and a crawled page rarely spell the same URL the same way (scheme, `www.`, a trailing slash,
tracking parameters, percent-encoding), so both sides are reduced to one canonical key with
`normalize_url` and joined on it. The key has no scheme and looks like `example.org/a/b?id=3`.

Rules:
- surrounding whitespace and a surrounding `<...>` are stripped; the scheme is case-insensitive and must
  be http or https, followed by `//` and a host; anything else gives None. http and https give the same
  key (the scheme is not part of it).
- host: lower-cased, trailing dots removed, leading `www.` removed (repeatedly), userinfo dropped. Ports
  80 and 443 are dropped whatever the scheme (the key is scheme-less, so `http://x:443` must equal
  `https://x`), other ports are kept as `host:port`; a port that is not a number up to 65535 gives None.
  Unicode (IDN) hosts stay unicode, lower-cased; punycode hosts are kept as they are. A host with
  whitespace, a control character, or a character that cannot be part of a host name (`<>"{}|\\^`%` and
  backtick) gives None. IPv6 literals are kept in brackets.
- the fragment is dropped.
- path: percent-decoded then re-encoded with a fixed safe set (so `%7E` and `~` give the same key, a
  space gives `%20`, `%2F` becomes `/`), runs of slashes collapsed, trailing slashes removed; `/` and
  the empty path both become the empty string.
- query: tracking parameters removed (keys starting with `utm_`, and `fbclid`, `gclid`, ...; compared
  case-insensitively), the rest sorted by key then value, blank values kept (`?a` becomes `?a=`), spaces
  encoded as `%20`; no `?` when nothing remains.

Any other odd character is percent-encoded. The function never raises, and it is idempotent on its own
keys: `normalize_url("https://" + key) == key`.
"""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import parse_qsl, quote, unquote, urlencode

# RFC 3986, appendix B: scheme, authority, path, query, fragment.
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#.*)?\Z", re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")
_PORT = re.compile(r"[0-9]{1,5}")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_BAD_HOST_CHARS = frozenset('<>"{}|\\^`%[]')
_DEFAULT_PORTS = {80, 443}
_PATH_SAFE = "/:@!$&'()*+,;="
# '+', '&', '=' and '#' must stay encoded in the query, or re-parsing the key would change it.
_QUERY_SAFE = "/:@!$'()*,;?"
TRACKING_PARAMS = frozenset({
    "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "yclid", "igshid", "_ga", "_hsenc", "_hsmi",
    "ref_src",
})


def normalize_url(url: str) -> str | None:
    """The canonical key of an http(s) URL (see the module docstring), or None if it is not one."""
    try:
        return _normalize(url)
    except ValueError:
        return None


def _normalize(url: str) -> str | None:
    # Lone surrogates cannot be UTF-8 encoded; they become U+FFFD before anything else looks at them.
    url = _SURROGATE.sub("\ufffd", url).strip()
    if url.startswith("<") and url.endswith(">"):
        url = url[1:-1].strip()
    m = _URL.match(url)
    if not m or m.group(1).lower() not in ("http", "https") or m.group(2) is None:
        return None
    authority, path, query = m.group(2), m.group(3), m.group(4) or ""
    host = _host(authority)
    if host is None:
        return None
    key = host + _path(path)
    query = _query(query)
    return f"{key}?{query}" if query else key


def _host(authority: str) -> str | None:
    """`host` or `host:port` from an authority, or None if the host or port is not valid."""
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        end = hostport.find("]") + 1
        host, port = hostport[:end], hostport[end:]
        if not _IPV6.fullmatch(host):
            return None
    else:
        host, colon, port = hostport.partition(":")
        port = colon + port
        if not _valid_host_name(host):
            return None
    port = _port(port)
    host = host.lower().rstrip(".")
    while host.startswith("www."):
        host = host[4:]
    return host + port if host and port is not None else None


def _port(port: str) -> str | None:
    """`:N` for a port other than 80 and 443, "" for none, None if it is not a port."""
    if port in ("", ":"):
        return ""
    if not port.startswith(":") or not _PORT.fullmatch(port[1:]) or int(port[1:]) > 65535:
        return None
    number = int(port[1:])
    return "" if number in _DEFAULT_PORTS else f":{number}"


def _valid_host_name(host: str) -> bool:
    return not any(c.isspace() or c in _BAD_HOST_CHARS or unicodedata.category(c) == "Cc" for c in host)


def _path(path: str) -> str:
    path = quote(unquote(path, errors="replace"), safe=_PATH_SAFE)
    return re.sub(r"/+", "/", path).rstrip("/")


def _query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True, errors="replace")
    kept = sorted((k, v) for k, v in pairs if not _is_tracking(k))
    return urlencode(kept, safe=_QUERY_SAFE, quote_via=quote)


def _is_tracking(key: str) -> bool:
    key = key.lower()
    return key.startswith("utm_") or key in TRACKING_PARAMS
