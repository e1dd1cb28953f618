"""One day of YarnIt traffic: searches, candidate lists, impressions, clicks, purchases, fraud.

Everything here is vectorised over searches and impressions (no Python loop over rows), and a
day is a pure function of the world, the date and the two generation faults (``label_flip``,
``duplicate_burst``): each purpose draws from its own ``(seed, date, stream)`` generator, so a
fault's extra draws never shift the numbers of the clean part of the day.

The behaviour model, per impression of product p to user i at position k::

    u = BIAS + W_REL*overlap(query, name) + W_TYPE*type_pref[i, type(p)] + W_DISC*discount(p)
        - sensitivity[i]*log(price_usd(p) / reference_price(type(p))) + quality(p)
        + W_NOVELTY*[p is < 14 days old]
    true_relevance = sigmoid(u)                  P(purchase | examined): the oracle ranks by it
    examination    = 1 / log2(k + 2)             position bias; positions are shuffled, so
    true_purchase_prob = examination * sigmoid(u)  position is independent of the features
    r ~ U(0, 1)
    clicked = r < examination * sigmoid(u + CLICK_LIFT); purchased = r < true_purchase_prob

Using one ``r`` for both makes every purchase a click.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from spindle.sim._schema import Frame, frame_concat
from spindle.sim._world import (
    CURRENCIES,
    F64,
    I64,
    NAME_WIDTH,
    QUERY_SLOTS,
    QUERY_WIDTH,
    REFERENCE_PRICE_USD,
    UNIX_EPOCH_ORDINAL,
    VOCAB,
    WORD_ID,
    World,
    fill_slots,
    stream,
    word_bits,
)

SEARCHES_PER_DAY = 2000.0
SLOTS = 20
MATCH_DRAWS = 15
POPULAR_DRAWS = 25
"""Candidates: first unique of 15 word-match draws then 25 popularity draws, cut at 20."""
BIAS = -4.7
W_REL = 2.5
W_TYPE = 0.6
W_DISC = 3.0
W_NOVELTY = 0.4
NOVELTY_DAYS = 14
CLICK_LIFT = 1.5
FRAUD_RATE = 0.01
DAY_US = 86_400_000_000
EXAMINATION = 1.0 / np.log2(np.arange(SLOTS) + 2.0)
DEVICES: tuple[str, ...] = ("web", "ios", "android")
DEVICE_P = np.array([0.55, 0.28, 0.17])
QUERY_FALLBACK = np.array([WORD_ID[w] for w in ("yarn", "needles", "hooks", "pattern", "kit")])
QUERY_FALLBACK = np.append(QUERY_FALLBACK, WORD_ID["bag"])
BURST_SEARCHES = (180, 221)
BURST_WINDOW_US = 4 * 60 * 1_000_000

_S_SEARCH, _S_PURCHASE, _S_FRAUD, _S_BURST, _S_BURST_PURCHASE = 11, 14, 15, 20, 23
"""Stream ids; ``_impressions`` uses base+1 (candidates) and base+2 (outcomes) of its base, so
the burst (20-23) never shifts the clean part of the day (11-15)."""

B = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class DayLog:
    """What happened on one day, as internal codes; ``fraud`` holds flags raised later for it.

    Rows carry ``origin`` (the date ordinal they happened on) and a per-day number (``search``,
    ``imp``, ``txn``) from which the string ids are made, so a row moved to another partition
    (late data) keeps its id.
    """

    ordinal: int
    searches: Frame
    impressions: Frame
    purchases: Frame
    fraud: Frame


def day_start_us(ordinal: int) -> int:
    """Microseconds since 1970-01-01 at 00:00 UTC of the day with this ordinal."""
    return (ordinal - UNIX_EPOCH_ORDINAL) * DAY_US


def sigmoid(x: F64) -> F64:
    """Logistic function without overflow warnings for large |x|."""
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -709 gives the right 0.0
        out: F64 = 1.0 / (1.0 + np.exp(-x))
    return out


def _queries(rng: np.random.Generator, world: World, users: I64) -> tuple[I64, I64]:
    """Query type (softmax of the user's preferences) and up to 3 query words in slot order."""
    prefs = world.type_pref[users]
    qtype = np.argmax(prefs + rng.gumbel(size=prefs.shape), axis=1).astype(np.int8)
    full = fill_slots(rng, qtype, QUERY_SLOTS, len(QUERY_SLOTS[0])).astype(np.int64)
    empty = (full < 0).all(axis=1)
    full[empty, 0] = QUERY_FALLBACK[qtype[empty]]
    keys = np.where(full >= 0, rng.random(full.shape), np.inf)
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    keep = (full >= 0) & (rank < QUERY_WIDTH)
    order = np.argsort(~keep, axis=1, kind="stable")
    words = np.take_along_axis(np.where(keep, full, -1), order, axis=1)[:, :QUERY_WIDTH]
    return qtype.astype(np.int64), words


def _searches(world: World, rng: np.random.Generator, ordinal: int, n: int) -> Frame:
    """``n`` searches by existing users, picked by activity, at uniform times of the day."""
    k = world.day_index(ordinal)
    ts = day_start_us(ordinal) + np.sort(rng.integers(0, DAY_US, n))
    user = weighted_choice(world.activity[: world.users_by_day[k]], rng.random(n))
    qtype, qwords = _queries(rng, world, user)
    device = rng.choice(len(DEVICES), size=n, p=DEVICE_P).astype(np.int8)
    return _search_frame(world, ts, user, qtype, qwords, device)


def _burst(world: World, rng: np.random.Generator, ordinal: int) -> Frame:
    """One user (a bot or a stuck client) repeating the same search ~200 times in minutes."""
    k = world.day_index(ordinal)
    n = int(rng.integers(*BURST_SEARCHES))
    user = np.full(n, rng.integers(0, world.users_by_day[k]), np.int64)
    t0 = day_start_us(ordinal) + rng.integers(0, DAY_US - BURST_WINDOW_US)
    ts = t0 + np.sort(rng.integers(0, BURST_WINDOW_US, n))
    qtype, qwords = _queries(rng, world, user[:1])
    device = np.full(n, rng.integers(0, len(DEVICES)), np.int8)
    return _search_frame(world, ts, user, np.repeat(qtype, n), np.repeat(qwords, n, axis=0), device)


def _search_frame(
    world: World, ts: I64, user: I64, qtype: I64, qwords: I64, device: npt.NDArray[np.int8]
) -> Frame:
    return {
        "ts": ts,
        "user": user,
        "country": world.user_country[user],
        "qtype": qtype,
        "qwords": qwords,
        "device": device,
    }


def weighted_choice(weights: F64, u: F64) -> I64:
    """Indices drawn with probability proportional to ``weights``, one per uniform in ``u``.

    Exact inverse-CDF sampling (what ``searchsorted`` on the cumulative weights gives) but
    through a guide table, so a draw costs a couple of gathers instead of a binary search:
    the guide gives, per bucket of the unit interval, where the search can start.
    """
    cum = np.cumsum(weights)
    n, m = len(cum), 2 * len(cum)
    guide = np.searchsorted(cum, np.arange(m) * (cum[-1] / m), side="right")
    flat = u.ravel()
    x = flat * cum[-1]
    j = guide[np.maximum((flat * m).astype(np.int64) - 1, 0)]  # one bucket early: rounding
    active = np.flatnonzero(cum[j] <= x)
    while active.size:
        j[active] += 1
        active = active[(j[active] < n - 1) & (cum[np.minimum(j[active], n - 1)] <= x[active])]
    chosen: I64 = np.minimum(j, n - 1).reshape(u.shape)
    return chosen


def _first_unique(cand: I64) -> B:
    """Mask of the first occurrence of each product in its row (-1 = no product)."""
    width = cand.shape[1]
    big = np.iinfo(np.int64).max >> 8
    packed = np.sort(np.where(cand >= 0, cand, big) * 64 + np.arange(width), axis=1)
    product, column = packed >> 6, packed & 63
    first_sorted = np.ones(packed.shape, np.bool_)
    first_sorted[:, 1:] = product[:, 1:] != product[:, :-1]
    first_sorted &= product < big
    first = np.empty(cand.shape, np.bool_)
    np.put_along_axis(first, column, first_sorted, axis=1)  # each row's column is a permutation
    return first


def _candidates(
    world: World, rng: np.random.Generator, n_products: int, qwords: I64
) -> tuple[I64, I64, npt.NDArray[np.int32]]:
    """(search index, product, position) of each impression, grouped by search.

    Up to 20 distinct products: word matches first (a product drawn from the posting list of a
    random query word), then popular items; shown in a random order so that position carries
    no information about the product (the logs support unbiased learning).
    """
    n = len(qwords)
    words = world.product_words[:n_products].ravel()
    owner = np.repeat(np.arange(n_products), NAME_WIDTH)[words >= 0]
    words = words[words >= 0]
    posting = owner[np.argsort(words, kind="stable")]
    counts = np.bincount(words, minlength=len(VOCAB))
    starts = np.cumsum(counts) - counts
    qlen = (qwords >= 0).sum(axis=1)
    col = (rng.random((n, MATCH_DRAWS)) * qlen[:, None]).astype(np.int64)
    word = qwords[np.arange(n)[:, None], col]
    hit = starts[word] + (rng.random((n, MATCH_DRAWS)) * counts[word]).astype(np.int64)
    match = np.where(counts[word] > 0, posting[np.minimum(hit, len(posting) - 1)], -1)
    popular = weighted_choice(world.popularity[:n_products], rng.random((n, POPULAR_DRAWS)))
    cand = np.hstack([match, popular])
    first = _first_unique(cand)
    keep = first & (np.cumsum(first, axis=1) <= SLOTS)
    search, column = np.nonzero(keep)
    per_search = keep.sum(axis=1)
    rank = np.arange(len(search)) - (np.cumsum(per_search) - per_search)[search]
    # A random permutation of 0..k-1 per search of k candidates: keys past k sort last.
    keys = np.where(np.arange(SLOTS) < per_search[:, None], rng.random((n, SLOTS)), 2.0)
    position = np.argsort(keys, axis=1)[search, rank]
    return search, cand[search, column], position.astype(np.int32)


def _utility(world: World, ordinal: int, searches: Frame, search: I64, product: I64) -> F64:
    """The latent utility u of each impression (see the module docstring)."""
    k = world.day_index(ordinal)
    n_products = int(world.products_by_day[k])
    ptype = world.product_type[:n_products]
    currency = world.product_currency[:n_products]
    price_usd = world.list_price[:n_products] * world.usd_per_unit[k][currency]
    log_price = np.log(price_usd / REFERENCE_PRICE_USD[ptype])
    novel = (ordinal - world.product_created[:n_products]) < NOVELTY_DAYS
    static = world.quality[:n_products] + W_DISC * world.discount(k) + W_NOVELTY * novel
    qwords = searches["qwords"]
    query_bits = word_bits(qwords)[search]
    # Words are unique within a name and within a query, so shared bits = shared words.
    shared = np.bitwise_count(query_bits & world.name_bits[product]).sum(axis=1)
    overlap = shared / (qwords >= 0).sum(axis=1)[search]
    user = searches["user"]
    pref = world.type_pref[user][search, ptype[product]]
    price_term = world.sensitivity[user][search] * log_price[product]
    u: F64 = BIAS + W_REL * overlap + W_TYPE * pref + static[product] - price_term
    return u


def _flip(u: F64, exam: F64) -> F64:
    """Utility reflected so labels anti-correlate with relevance at the same expected count."""
    target = float(np.sum(exam * sigmoid(u)))
    lo, hi = -60.0, 60.0
    for _ in range(60):  # bisection on the offset c of sum(exam * sigmoid(c - u)) = target
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if np.sum(exam * sigmoid(mid - u)) < target else (lo, mid)
    flipped: F64 = 0.5 * (lo + hi) - u
    return flipped


def _impressions(
    world: World, ordinal: int, searches: Frame, seed: int, base: int, flip: bool
) -> tuple[Frame, B]:
    """Impressions of ``searches`` with ground truth, clicks, and which ones were purchased."""
    n_products = int(world.products_by_day[world.day_index(ordinal)])
    rng_c = stream(seed, ordinal, base + 1)
    search, product, position = _candidates(world, rng_c, n_products, searches["qwords"])
    u = _utility(world, ordinal, searches, search, product)
    relevance = sigmoid(u)
    exam = EXAMINATION[position]
    r = stream(seed, ordinal, base + 2).random(len(u))
    logged = _flip(u, exam) if flip else u
    frame = {
        "search": search,
        "ts": searches["ts"][search],
        "user": searches["user"][search],
        "country": searches["country"][search],
        "device": searches["device"][search],
        "product": product,
        "position": position,
        "clicked": r < exam * sigmoid(logged + CLICK_LIFT),
        "true_purchase_prob": exam * relevance,
        "true_relevance": relevance,
    }
    return frame, r < exam * sigmoid(logged)


def _purchases(
    world: World, ordinal: int, impressions: Frame, bought: B, rng: np.random.Generator
) -> Frame:
    """One row per purchased impression, at the listed price after discount, minutes later."""
    k = world.day_index(ordinal)
    row = np.flatnonzero(bought)
    product = impressions["product"][row]
    delay = 30_000_000 + rng.exponential(240_000_000, len(row)).astype(np.int64)
    # Clipped so that a clean purchase is always inside its day (corrupt_rows breaks that).
    ts = np.minimum(impressions["ts"][row] + delay, day_start_us(ordinal + 1) - 1)
    discount = world.discount(k)[product]
    currency = world.product_currency[product]
    raw = world.list_price[product] * (1.0 - discount)
    price = np.where(currency == CURRENCIES.index("JPY"), np.round(raw), np.round(raw, 2))
    return {
        "ts": ts,
        "search": impressions["search"][row],
        "user": impressions["user"][row],
        "country": impressions["country"][row],
        "product": product,
        "price": price,
        "currency": currency,
        "quantity": rng.choice(3, size=len(row), p=[0.75, 0.18, 0.07]).astype(np.int32) + 1,
        "discount_pct": discount,
    }


def _fraud(ordinal: int, n_purchases: int, rng: np.random.Generator) -> Frame:
    """Chargebacks: ~1% of the day's purchases are flagged 2-10 days later."""
    flagged = np.flatnonzero(rng.random(n_purchases) < FRAUD_RATE)
    delay_days = rng.integers(2, 11, n_purchases)[flagged]
    offset_us = rng.integers(0, DAY_US, n_purchases)[flagged]
    flag_day = ordinal + delay_days
    return {
        "txn": flagged,
        "origin": np.full(len(flagged), ordinal, np.int64),
        "flag_day": flag_day,
        "ts": (flag_day - UNIX_EPOCH_ORDINAL) * DAY_US + offset_us,
    }


def _number(frame: Frame, key: str, ordinal: int) -> Frame:
    n = len(frame["ts"])
    return {key: np.arange(n), "origin": np.full(n, ordinal, np.int64), **frame}


def generate_day(world: World, ordinal: int, *, label_flip: bool, burst: bool) -> DayLog:
    """The day with this date ordinal, before any logging fault (see ``spindle.sim._faults``).

    Args:
        world: built up to at least this day.
        ordinal: ``date.toordinal()`` of the day; must not precede ``world.epoch``.
        label_flip: draw clicks and purchases from the reflected utility (true_* unchanged).
        burst: add one user's burst of ~200 identical searches (``duplicate_burst``).
    """
    seed = world.seed
    rng = stream(seed, ordinal, _S_SEARCH)
    searches = _searches(world, rng, ordinal, int(rng.poisson(SEARCHES_PER_DAY * world.scale)))
    impressions, bought = _impressions(world, ordinal, searches, seed, _S_SEARCH, label_flip)
    purchases = _purchases(world, ordinal, impressions, bought, stream(seed, ordinal, _S_PURCHASE))
    fraud = _fraud(ordinal, len(purchases["ts"]), stream(seed, ordinal, _S_FRAUD))
    if burst:
        b_searches = _burst(world, stream(seed, ordinal, _S_BURST), ordinal)
        b_imps, b_bought = _impressions(world, ordinal, b_searches, seed, _S_BURST, label_flip)
        b_purchases = _purchases(
            world, ordinal, b_imps, b_bought, stream(seed, ordinal, _S_BURST_PURCHASE)
        )
        for frame in (b_imps, b_purchases):
            frame["search"] = frame["search"] + len(searches["ts"])
        searches = frame_concat([searches, b_searches])
        impressions = frame_concat([impressions, b_imps])
        purchases = frame_concat([purchases, b_purchases])
    return DayLog(
        ordinal=ordinal,
        searches=_number(searches, "search", ordinal),
        impressions=_number(impressions, "imp", ordinal),
        purchases=_number(purchases, "txn", ordinal),
        fraud=fraud,
    )
