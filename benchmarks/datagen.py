"""Deterministic generator of SQL-dump-like text (pg_dump COPY blocks) for the benchmarks.

``generate(size, seed=...)`` streams exactly ``size`` bytes in ~1 MiB pieces with bounded memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import ClassVar

DEFAULT_SEED = 20240601
BLOCK_ROWS = 5000
"""Rows generated per piece (a piece is roughly 0.4-1.1 MiB)."""

ROWS_PER_COPY = 5000
"""Rows in one COPY block before the generator moves on to the next table."""

CACHE_DIR = Path(os.environ.get("BACKSTREAM_BENCH_CACHE", "/tmp/backstream-bench"))
"""Where generated sample files are cached (override with BACKSTREAM_BENCH_CACHE)."""

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3}
_UNITS |= {"kib": 1024, "mib": 1024**2, "gib": 1024**3}


def parse_size(text: str) -> int:
    """``"256MiB"`` -> 268435456; accepts B, k/KB, M/MB, G/GB (decimal) and KiB/MiB/GiB."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 64MiB, 1GiB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_size(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % (factor // 16) == 0:
            return f"{size / factor:g} {unit}"
    return f"{size} B"


# --- vocabulary ---------------------------------------------------------------------------------

_FUNCTION_WORDS = (
    "the of and to a in is was for on that with as it by at from this be are or not an have has "
    "but which were all we they you one their there been more when will would can no if out so "
    "about up what into than its some could them other only new after also should any these may"
).split()

_ONSETS = "b c d f g h j k l m n p r s t v w y z br cr dr fr gr pr tr bl cl fl gl pl sl st sp sc sh ch th qu".split()
_NUCLEI = "a e i o u a e i o ea ai ou io ie ee oo".split()
_CODAS = [*"n r s t l m d k x".split(), "", "", "", "", "nd", "st", "rt", "ng", "ck", "ll", "ss", "nt", "rk"]


def _word(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_ONSETS) + rng.choice(_NUCLEI) + rng.choice(_CODAS) for _ in range(syllables))


def _zipf_pool(items: list[str], size: int, exponent: float) -> list[str]:
    """``items`` repeated in proportion to a Zipf law, so that unweighted ``choices`` is Zipf-like
    (and fast: weighted ``choices`` costs four times as much per draw)."""
    weights = [1.0 / (rank + 2) ** exponent for rank in range(len(items))]
    scale = size / sum(weights)
    return [item for item, weight in zip(items, weights, strict=True) for _ in range(max(1, round(weight * scale)))]


class _Vocabulary:
    """Word, phrase and name lists drawn once from the seed."""

    def __init__(self, rng: random.Random) -> None:
        content = sorted({_word(rng, rng.choice((1, 2, 2, 2, 3, 3, 4))) for _ in range(6000)})
        rng.shuffle(content)
        words = _zipf_pool(_FUNCTION_WORDS + content, 80_000, 1.0)
        # Text is built from phrases (word n-grams that recur, as in real prose), not single words.
        phrases = [" ".join(rng.choices(words, k=rng.choice((1, 2, 2, 3, 3, 4, 5)))) for _ in range(40_000)]
        self.phrases = _zipf_pool(phrases, 200_000, 0.8)
        self.first_names = [w.capitalize() for w in sorted({_word(rng, rng.choice((2, 2, 3))) for _ in range(700)})]
        self.first_names = _zipf_pool(self.first_names, 5000, 0.7)
        self.last_names = [w.capitalize() for w in sorted({_word(rng, rng.choice((2, 3, 3))) for _ in range(3000)})]
        self.last_names = _zipf_pool(self.last_names, 20000, 0.6)
        domains = [f"{_word(rng, 2)}.{rng.choice(('com', 'net', 'org', 'io', 'de', 'co.uk'))}" for _ in range(60)]
        self.domains = _zipf_pool(["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", *domains], 2000, 1.0)
        self.cities = _zipf_pool(sorted({_word(rng, rng.choice((2, 3))).capitalize() for _ in range(400)}), 4000, 0.8)
        self.countries = _zipf_pool("US DE FR GB NL ES IT PL SE BR IN JP CA AU".split(), 500, 1.0)
        self.statuses = ["pending", "paid", "shipped", "delivered", "delivered", "delivered", "cancelled", "refunded"]
        self.currencies = ["USD", "EUR", "GBP", "EUR", "USD", "USD"]
        self.levels = ["INFO", "INFO", "INFO", "INFO", "WARN", "DEBUG", "DEBUG", "ERROR"]
        self.services = [f"{_word(rng, 2)}-{rng.choice(('api', 'worker', 'web', 'cron', 'db'))}" for _ in range(30)]
        self.resources = [_word(rng, rng.choice((1, 2))) + "s" for _ in range(25)]
        self.http = [200] * 12 + [201, 201, 204, 302, 304, 400, 404, 404, 500]
        start = dt.date(2019, 1, 1)
        self.days = [(start + dt.timedelta(days=i)).isoformat() for i in range(366 * 12)]


# --- rows ---------------------------------------------------------------------------------------


class _Generator:
    """Produces COPY blocks table after table, forever; ids and timestamps keep increasing."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.vocab = _Vocabulary(self.rng)
        self.next_id = {"customers": 1, "orders": 1, "comments": 1, "events": 1}
        self.clock = 0.0  # seconds since 2019-01-01
        self.partition = 0

    def _timestamps(self, count: int, mean_step: float, micros: bool = False) -> list[str]:
        """``count`` increasing ``timestamptz`` values, ``mean_step`` seconds apart on average."""
        random_, days = self.rng.random, self.vocab.days
        out = []
        clock = self.clock
        step = 2.0 * mean_step
        minute_seen = -1
        prefix = ""
        for _ in range(count):
            clock += random_() * step
            total = int(clock)
            minute, second = divmod(total, 60)
            if minute != minute_seen:  # formatting the date and hour once per minute is much cheaper
                minute_seen = minute
                day, rest = divmod(minute, 1440)
                prefix = f"{days[day % len(days)]} {rest // 60:02d}:{rest % 60:02d}:"
            if micros:
                out.append(f"{prefix}{second:02d}.{int((clock - total) * 1_000_000):06d}+00")
            else:
                out.append(f"{prefix}{second:02d}+00")
        self.clock = clock
        return out

    def _sentences(self, count: int, low: int, high: int) -> list[str]:
        """``count`` sentences of ``low``..``high`` phrases each."""
        rng = self.rng
        lengths = rng.choices(range(low, high + 1), k=count)
        phrases = rng.choices(self.vocab.phrases, k=sum(lengths))
        ends = rng.choices(".....!?", k=count)
        out = []
        pos = 0
        for length, end in zip(lengths, ends, strict=True):
            text = " ".join(phrases[pos : pos + length])
            pos += length
            out.append(text[0].upper() + text[1:] + end)
        return out

    def _ids(self, table: str, count: int) -> range:
        first = self.next_id[table]
        self.next_id[table] = first + count
        return range(first, first + count)

    def customers(self, count: int) -> list[str]:
        rng, v = self.rng, self.vocab
        random_ = rng.random
        columns = zip(
            self._ids("customers", count),
            rng.choices(v.first_names, k=count),
            rng.choices(v.last_names, k=count),
            rng.choices(v.domains, k=count),
            rng.choices(v.cities, k=count),
            rng.choices(v.countries, k=count),
            self._timestamps(count, 40.0),
            strict=True,
        )
        rows = []
        for i, first, last, domain, city, country, ts in columns:
            r = random_()
            suffix = str(int(r * 300)) if r < 0.3 else ""
            email = f"{first.lower()}.{last.lower()}{suffix}@{domain}"
            phone = r"\N" if r > 0.75 else f"+1-{200 + int(r * 1060)}-555-{int(random_() * 10000):04d}"
            active = "f" if 0.1 < r < 0.25 else "t"
            balance = f"{int(random_() * 500000) / 100:.2f}"
            rows.append(f"{i}\t{first}\t{last}\t{email}\t{phone}\t{city}\t{country}\t{ts}\t{active}\t{balance}\n")
        return rows

    def orders(self, count: int) -> list[str]:
        rng, v = self.rng, self.vocab
        random_ = rng.random
        customers = max(2, self.next_id["customers"])
        notes = self._sentences(count // 5 + 1, 1, 4)
        placed = self._timestamps(count, 15.0)
        # Shipping happens a few hundred orders later (same clock, so the text stays in order).
        shipped_at = placed[count // 4 :] + self._timestamps(count // 4, 15.0)
        columns = zip(
            self._ids("orders", count),
            rng.choices(v.statuses, k=count),
            rng.choices(v.currencies, k=count),
            placed,
            shipped_at,
            strict=True,
        )
        rows = []
        for i, status, currency, ts, later in columns:
            r = random_()
            customer = 1 + int(random_() * customers)
            total = f"{int(99 + random_() * 25000) / 100:.2f}"
            items = 1 + int(r * 11)
            shipped = later if status in ("shipped", "delivered") else r"\N"
            note = notes.pop() if r < 0.2 and notes else r"\N"
            rows.append(f"{i}\t{customer}\t{status}\t{items}\t{total}\t{currency}\t{ts}\t{shipped}\t{note}\n")
        return rows

    def comments(self, count: int) -> list[str]:
        rng, v = self.rng, self.vocab
        random_ = rng.random
        orders = max(2, self.next_id["orders"])
        columns = zip(
            self._ids("comments", count),
            rng.choices(v.first_names, k=count),
            self._timestamps(count, 30.0),
            self._sentences(count, 2, 14),
            strict=True,
        )
        rows = []
        for i, author, ts, body in columns:
            r = random_()
            rating = r"\N" if r < 0.3 else str(1 + int(r * 5))
            rows.append(f"{i}\t{1 + int(random_() * orders)}\t{author}\t{body}\t{rating}\t{ts}\n")
        return rows

    def events(self, count: int) -> list[str]:
        rng, v = self.rng, self.vocab
        random_ = rng.random
        users = max(2, self.next_id["customers"])
        columns = zip(
            self._ids("events", count),
            rng.choices(v.levels, k=count),
            rng.choices(v.services, k=count),
            rng.choices(v.resources, k=count),
            rng.choices(v.http, k=count),
            self._timestamps(count, 2.0, micros=True),
            strict=True,
        )
        words = rng.choices(v.phrases, k=count)
        rows = []
        for (i, level, service, resource, status, ts), word in zip(columns, words, strict=True):
            r = random_()
            user = 1 + int(random_() * users)
            kind = int(r * 5)
            if kind == 0:
                message = f"GET /api/v1/{resource}/{user} completed"
            elif kind == 1:
                message = f"user {user} logged in from 10.{int(r * 1280) % 256}.{user % 256}.{i % 250 + 1}"
            elif kind == 2:
                message = f"cache miss for {resource}:{user}"
            elif kind == 3:
                message = f"job {resource}-sync finished: {word}"
            else:
                message = f"POST /api/v1/{resource} {word}"
            payload = f'{{"user_id": {user}, "latency_ms": {r * r * 900:.1f}, "status": {status}}}'
            rows.append(f"{i}\t{ts}\t{level}\t{service}\t{message}\t{payload}\n")
        return rows

    TABLES: ClassVar[dict[str, str]] = {
        "customers": "id, first_name, last_name, email, phone, city, country, created_at, active, balance",
        "orders": "id, customer_id, status, items, total, currency, placed_at, shipped_at, note",
        "comments": "id, order_id, author, body, rating, created_at",
        "events": "id, ts, level, service, message, payload",
    }

    def pieces(self) -> Iterator[bytes]:
        """An endless dump: a header, then COPY blocks cycling through the tables."""
        yield (
            b"--\n-- PostgreSQL database dump (generated by backstream benchmarks/datagen.py)\n--\n\n"
            b"SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n"
            b"SET standard_conforming_strings = on;\n\n"
        )
        order = ("customers", "orders", "orders", "comments", "events", "events")
        while True:
            for table in order:
                self.partition += 1
                columns = self.TABLES[table]
                head = (
                    f"--\n-- Data for Name: {table}_p{self.partition:05d}; Type: TABLE DATA; Schema: public\n--\n\n"
                    f"COPY public.{table}_p{self.partition:05d} ({columns}) FROM stdin;\n"
                )
                make = getattr(self, table)
                rows_left = ROWS_PER_COPY
                first = True
                while rows_left:
                    count = min(BLOCK_ROWS, rows_left)
                    rows_left -= count
                    body = "".join(make(count))
                    if first:
                        body = head + body
                        first = False
                    if not rows_left:
                        body += "\\.\n\n"
                    yield body.encode()


def generate(size: int, *, seed: int = DEFAULT_SEED) -> Iterator[bytes]:
    """Yield exactly ``size`` bytes of dump text (the last row may be cut); same seed, same bytes."""
    left = size
    for piece in _Generator(seed).pieces():
        if left <= 0:
            return
        if len(piece) > left:
            piece = piece[:left]
        left -= len(piece)
        yield piece


@asynccontextmanager
async def generated_source(size: int, *, seed: int = DEFAULT_SEED) -> AsyncIterator[AsyncIterator[bytes]]:
    """A pipeline source streaming ``generate(size)`` without any file (generation runs in a thread)."""
    import anyio.to_thread

    pieces = generate(size, seed=seed)

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            piece = await anyio.to_thread.run_sync(next, pieces, None)
            if piece is None:
                return
            yield piece

    yield chunks()


def sample_file(size: int, *, seed: int = DEFAULT_SEED, cache_dir: Path = CACHE_DIR) -> Path:
    """The path of a cached sample of ``size`` bytes, generating it once (a prefix of a larger one is
    copied instead when one exists, since every sample is a prefix of the same endless stream)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"dump-{seed}-{size}.sql"
    if path.exists() and path.stat().st_size == size:
        return path
    temporary = path.with_suffix(".partial")
    larger = sorted(
        (p for p in cache_dir.glob(f"dump-{seed}-*.sql") if p.stat().st_size > size), key=lambda p: p.stat().st_size
    )
    with open(temporary, "wb") as out:
        if larger:
            with open(larger[0], "rb") as src:
                left = size
                while left:
                    block = src.read(min(left, 1 << 20))
                    out.write(block)
                    left -= len(block)
        else:
            for piece in generate(size, seed=seed):
                out.write(piece)
    os.replace(temporary, path)
    return path


def zstd_ratio(data: bytes, level: int = 3) -> float:
    """Input size / zstd-``level`` output size (single-threaded, as ``zstd -3 -T1``)."""
    import zstandard

    return len(data) / len(zstandard.ZstdCompressor(level=level).compress(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("64MiB"), help="bytes to generate (64MiB)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, help="write the sample here (default: only measure)")
    parser.add_argument("--cache", action="store_true", help=f"write it to the cache ({CACHE_DIR})")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.cache:
        target = sample_file(args.size, seed=args.seed)
        print(f"cached {format_size(args.size)} at {target}")
        data = target.read_bytes()
    else:
        data = b"".join(generate(args.size, seed=args.seed))
        if args.out:
            args.out.write_bytes(data)
    elapsed = time.perf_counter() - started
    print(f"generated {format_size(len(data))} in {elapsed:.2f} s ({len(data) / elapsed / 1e6:.1f} MB/s)")
    lines = data.count(b"\n")
    nulls = data.count(rb"\N")
    print(f"lines: {lines}, mean line length {len(data) / max(1, lines):.0f} B, NULLs: {nulls}")
    for level in (1, 3):
        print(f"zstd-{level} ratio: {zstd_ratio(data, level):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
