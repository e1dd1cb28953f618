"""The YarnIt world: catalogue, users, FX history and the latent parameters behind every log row.

The world is a pure function of ``(seed, scale, epoch)``. Everything that changes over time
(new products, signups, discount spells, FX) is drawn day by day from a random stream keyed by
``(seed, date, stream)``, so building the world up to a later date only appends to it: the
prefix up to any day is the same whatever horizon was asked for. That is what makes a split
run byte-identical to a single run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from spindle.sim._schema import fixed_ids

COUNTRIES: MappingProxyType[str, str] = MappingProxyType(
    {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "JP": "JPY", "CA": "CAD", "AU": "AUD"}
)
"""Country code -> currency of the users there (and of the sellers listing from there)."""
COUNTRY_CODES: tuple[str, ...] = tuple(COUNTRIES)
COUNTRY_WEIGHTS = np.array([0.38, 0.14, 0.12, 0.09, 0.09, 0.10, 0.08])
CURRENCIES: tuple[str, ...] = ("USD", "GBP", "EUR", "JPY", "CAD", "AUD")
CURRENCY_OF_COUNTRY = np.array([CURRENCIES.index(COUNTRIES[c]) for c in COUNTRY_CODES], np.int8)
BASE_USD_PER_UNIT = np.array([1.0, 1.27, 1.08, 0.0066, 0.73, 0.65])

PRODUCT_TYPES: tuple[str, ...] = ("yarn", "needles", "hooks", "patterns", "kits", "notions")
TYPE_SHARES = np.array([0.45, 0.12, 0.08, 0.15, 0.08, 0.12])
REFERENCE_PRICE_USD = np.array([12.0, 15.0, 9.0, 7.0, 48.0, 11.0])
"""Typical price of each type: the price term of the utility is log(price / this)."""
TYPE_BASE_PREF = np.array([0.8, -0.2, -0.5, 0.0, -0.4, -0.6])

FIBRES: tuple[str, ...] = ("merino", "alpaca", "cotton", "silk", "mohair", "cashmere")
FIBRES += ("bamboo", "linen", "wool", "acrylic")
FIBRE_PRICE = (1.3, 1.5, 0.9, 1.8, 1.5, 2.5, 0.9, 1.2, 1.0, 0.6)
WEIGHTS = ("lace", "fingering", "sport", "dk", "worsted", "aran", "chunky")
COLOURS: tuple[str, ...] = ("red", "blue", "green", "grey", "cream", "black", "pink", "teal")
COLOURS += ("mustard", "rust", "navy", "lilac", "ochre", "charcoal", "heather", "rainbow")
COLOURS += ("speckled", "variegated")
USES = ("sock", "shawl", "blanket", "sweater", "hat")
SIZES = ("2mm", "2.5mm", "3mm", "3.5mm", "4mm", "4.5mm", "5mm", "6mm", "8mm", "10mm")
NEEDLE_MATERIALS = ("bamboo", "steel", "aluminium", "birch", "carbon")
NEEDLE_KINDS = ("circular", "straight", "dpn", "interchangeable")
HOOK_MATERIALS = ("steel", "aluminium", "bamboo", "ergonomic")
STYLES = ("cabled", "colourwork", "striped", "textured", "simple", "beginner", "openwork")
NOTIONS: tuple[str, ...] = ("stitch markers", "tape measure", "yarn bowl", "wool wash")
NOTIONS += ("row counter", "project bag", "darning needles", "cable needles", "blocking mats")
NOTIONS += ("ball winder",)

Slot = tuple[tuple[str, ...], float]
NAME_SLOTS: tuple[tuple[Slot, ...], ...] = (
    ((COLOURS, 0.8), (FIBRES, 1.0), (WEIGHTS, 1.0), (USES, 0.3), (("yarn",), 1.0)),
    ((NEEDLE_MATERIALS, 1.0), (NEEDLE_KINDS, 1.0), (("needles",), 1.0), (SIZES, 1.0)),
    ((HOOK_MATERIALS, 1.0), (("crochet",), 1.0), (("hooks",), 1.0), (SIZES, 0.5)),
    ((STYLES, 0.6), (WEIGHTS, 0.4), (USES, 1.0), (("pattern",), 1.0)),
    ((COLOURS, 0.3), (FIBRES, 0.6), (USES, 1.0), (("kit",), 1.0)),
    ((COLOURS, 0.3), (NOTIONS, 1.0)),
)
"""Product names per type: each slot is (phrases, probability it appears), in name order."""
QUERY_SLOTS: tuple[tuple[Slot, ...], ...] = (
    ((FIBRES, 0.6), (WEIGHTS, 0.5), (COLOURS, 0.15), (USES, 0.3), (("yarn",), 0.5)),
    ((NEEDLE_MATERIALS, 0.3), (NEEDLE_KINDS, 0.5), (("needles",), 0.9), (SIZES, 0.4)),
    ((HOOK_MATERIALS, 0.3), (("crochet",), 0.8), (("hooks",), 0.8), (SIZES, 0.3)),
    ((STYLES, 0.2), (WEIGHTS, 0.2), (USES, 0.8), (("pattern",), 0.9)),
    ((FIBRES, 0.3), (USES, 0.7), (("kit",), 0.9)),
    ((COLOURS, 0.05), (tuple(n.split()[1] for n in NOTIONS), 1.0)),
)
"""What a shopper looking for each type types: one word from each slot that fires (max 3)."""

VOCAB: tuple[str, ...] = tuple(
    dict.fromkeys(w for slots in NAME_SLOTS for ph, _ in slots for p in ph for w in p.split())
)
WORD_ID: MappingProxyType[str, int] = MappingProxyType({w: i for i, w in enumerate(VOCAB)})
NAME_WIDTH = 5
"""Most words in a product name (yarn: colour fibre weight use 'yarn')."""
QUERY_WIDTH = 3
WORD_PRICE = np.ones(len(VOCAB))
WORD_PRICE[[WORD_ID[f] for f in FIBRES]] = FIBRE_PRICE

PRODUCTS_AT_EPOCH = 1500
NEW_PRODUCTS_PER_DAY = 5.0
USERS_AT_EPOCH = 4000
SIGNUPS_PER_DAY = 20.0
DISCOUNT_LEVELS = np.array([0.0, 0.1, 0.2, 0.3, 0.5])
DISCOUNT_LEVEL_P = np.array([0.35, 0.3, 0.2, 0.15])
DISCOUNT_END_P = 0.2
"""Spells last 5 days on average; with the start rate below ~15% of products are on offer."""
DISCOUNT_START_P = DISCOUNT_END_P * 0.15 / 0.85

_STREAM_PRODUCTS, _STREAM_USERS, _STREAM_DISCOUNT, _STREAM_FX, _STREAM_PREFS = 1, 2, 3, 4, 5
UNIX_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def stream(seed: int, ordinal: int, stream_id: int) -> np.random.Generator:
    """The random stream for one (seed, day, purpose): independent of every other stream."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, ordinal, stream_id])))


@dataclass(frozen=True, eq=False)
class World:
    """Every product and user up to ``horizon``, with the latent truth behind their behaviour.

    Products and users are stored in creation order, so those existing on day ``k`` (days since
    ``epoch``) are a prefix: ``products_by_day[k]`` and ``users_by_day[k]`` give its length.
    """

    seed: int
    scale: float
    epoch: dt.date
    horizon: dt.date
    product_ids: pa.StringArray
    product_names: pa.StringArray
    product_type: I8
    product_words: npt.NDArray[np.int16]
    name_bits: npt.NDArray[np.uint64]
    product_currency: I8
    list_price: F64
    is_partner: npt.NDArray[np.bool_]
    quality: F64
    popularity: F64
    product_created: I64
    products_by_day: I64
    discount_code: I8
    user_ids: pa.StringArray
    user_country: I8
    user_signup: I64
    sensitivity: F64
    type_pref: F64
    activity: F64
    users_by_day: I64
    usd_per_unit: F64

    def day_index(self, ordinal: int) -> int:
        """Days from the epoch to the day with this date ordinal (0 on the epoch day)."""
        return ordinal - self.epoch.toordinal()

    def discount(self, k: int) -> F64:
        """Discount fraction of each product existing on day ``k``."""
        codes = self.discount_code[k, : self.products_by_day[k]]
        return DISCOUNT_LEVELS[codes]


def _phrase_table(phrases: tuple[str, ...]) -> npt.NDArray[np.int16]:
    table = np.full((len(phrases), 2), -1, np.int16)
    for row, phrase in enumerate(phrases):
        for col, word in enumerate(phrase.split()):
            table[row, col] = WORD_ID[word]
    return table


def fill_slots(
    rng: np.random.Generator, kinds: I8, slots: tuple[tuple[Slot, ...], ...], width: int
) -> npt.NDArray[np.int16]:
    """Word ids (padded with -1) drawn slot by slot for each row's kind; vectorised per slot."""
    words = np.full((len(kinds), width), -1, np.int16)
    for kind, kind_slots in enumerate(slots):
        rows = np.flatnonzero(kinds == kind)
        cursor = np.zeros(len(rows), np.int64)
        for phrases, p_include in kind_slots:
            table = _phrase_table(phrases)
            include = rng.random(len(rows)) < p_include
            choice = rng.integers(0, len(phrases), len(rows))
            for col in range(table.shape[1]):
                word = table[choice, col]
                ok = include & (word >= 0) & (cursor < width)
                words[rows[ok], cursor[ok]] = word[ok]
                cursor += ok
    return words


def _new_products(rng: np.random.Generator, created: I64) -> dict[str, Any]:
    n = len(created)
    kinds = rng.choice(len(PRODUCT_TYPES), size=n, p=TYPE_SHARES).astype(np.int8)
    words = fill_slots(rng, kinds, NAME_SLOTS, NAME_WIDTH)
    fibre_mult = np.prod(np.where(words >= 0, WORD_PRICE[words], 1.0), axis=1)
    usd = REFERENCE_PRICE_USD[kinds] * fibre_mult * np.exp(rng.normal(0.0, 0.45, n))
    seller = rng.choice(len(COUNTRY_CODES), size=n, p=COUNTRY_WEIGHTS)
    currency = CURRENCY_OF_COUNTRY[seller]
    local = usd / BASE_USD_PER_UNIT[currency]
    # Shops price like shops: 11.99 in most currencies, round tens of yen.
    is_yen = currency == CURRENCIES.index("JPY")
    cents = np.maximum(1.0, np.round(local)) - 0.01
    price = np.where(is_yen, np.maximum(10.0, np.round(local, -1)), cents)
    quality = rng.normal(0.0, 0.5, n)
    return {
        "type": kinds,
        "words": words,
        "currency": currency,
        "price": price,
        "partner": rng.random(n) < 0.3,
        "quality": quality,
        "popularity": np.exp(1.5 * quality + rng.normal(0.0, 0.5, n)),
        "created": created,
    }


def _new_users(rng: np.random.Generator, signup: I64, country_pref: F64) -> dict[str, Any]:
    n = len(signup)
    country = rng.choice(len(COUNTRY_CODES), size=n, p=COUNTRY_WEIGHTS).astype(np.int8)
    noise = rng.normal(0.0, 0.35, (n, len(PRODUCT_TYPES)))
    return {
        "country": country,
        "signup": signup,
        "sensitivity": rng.lognormal(0.0, 0.3, n),
        "type_pref": TYPE_BASE_PREF + country_pref[country] + noise,
        "activity": rng.lognormal(0.0, 1.0, n),
    }


def _stack(batches: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}


def _grow(
    seed: int, scale: float, epoch: dt.date, n_days: int
) -> tuple[dict[str, Any], dict[str, Any], I64, I64]:
    """Products and users at the epoch plus each later day's arrivals (one stream per day)."""
    e = epoch.toordinal()
    shape = (len(COUNTRY_CODES), len(PRODUCT_TYPES))
    country_pref = stream(seed, e, _STREAM_PREFS).normal(0.0, 0.4, shape)
    rng_p, rng_u = stream(seed, e, _STREAM_PRODUCTS), stream(seed, e, _STREAM_USERS)
    n_p = max(30, round(PRODUCTS_AT_EPOCH * scale))
    n_u = max(20, round(USERS_AT_EPOCH * scale))
    products = [_new_products(rng_p, e - rng_p.integers(0, 730, n_p))]
    users = [_new_users(rng_u, e - rng_u.integers(0, 1095, n_u), country_pref)]
    for k in range(1, n_days):
        rng_p, rng_u = stream(seed, e + k, _STREAM_PRODUCTS), stream(seed, e + k, _STREAM_USERS)
        new_p = rng_p.poisson(NEW_PRODUCTS_PER_DAY * scale)
        products.append(_new_products(rng_p, np.full(new_p, e + k, np.int64)))
        new_u = rng_u.poisson(SIGNUPS_PER_DAY * scale)
        users.append(_new_users(rng_u, np.full(new_u, e + k, np.int64), country_pref))
    counts_p = np.cumsum([len(b["type"]) for b in products]).astype(np.int64)
    counts_u = np.cumsum([len(b["country"]) for b in users]).astype(np.int64)
    return _stack(products), _stack(users), counts_p, counts_u


def _discount_spells(seed: int, epoch: dt.date, counts: I64) -> I8:
    """Discount level code per (day, product): a two-state Markov chain stepped day by day."""
    n_days, n_all = len(counts), int(counts[-1])
    codes = np.zeros((n_days, n_all), np.int8)
    for k in range(n_days):
        n = int(counts[k])
        rng = stream(seed, epoch.toordinal() + k, _STREAM_DISCOUNT)
        u = rng.random(n)
        level = (rng.choice(4, size=n, p=DISCOUNT_LEVEL_P) + 1).astype(np.int8)
        if k == 0:
            codes[0, :n] = np.where(u < 0.15, level, 0)
            continue
        prev = codes[k - 1, :n]
        on = prev > 0
        codes[k, :n] = np.where(on, np.where(u < DISCOUNT_END_P, 0, prev), 0)
        codes[k, :n] = np.where(~on & (u < DISCOUNT_START_P), level, codes[k, :n])
    return codes


def _fx_history(seed: int, epoch: dt.date, n_days: int) -> F64:
    """USD per unit per (day, currency): a mean-reverting walk around the base rates."""
    dev = np.zeros(len(CURRENCIES))
    rates = np.empty((n_days, len(CURRENCIES)))
    for k in range(n_days):
        rng = stream(seed, epoch.toordinal() + k, _STREAM_FX)
        step = rng.normal(0.0, 0.004, len(CURRENCIES))
        dev = step * 3.0 if k == 0 else 0.97 * dev + step
        rates[k] = BASE_USD_PER_UNIT * np.exp(dev)
    rates[:, CURRENCIES.index("USD")] = 1.0
    return rates


def word_bits(words: npt.NDArray[Any]) -> npt.NDArray[np.uint64]:
    """Each row's set of word ids (-1 = padding) as a bitset over ``VOCAB``, 64 words a lane.

    Query/name overlap is then a popcount of an AND instead of a words x words comparison.
    """
    lanes = -(-len(VOCAB) // 64)
    bits = np.zeros((len(words), lanes), np.uint64)
    for col in range(words.shape[1]):
        word = words[:, col].astype(np.int64)
        ok = word >= 0
        lane, bit = np.divmod(np.where(ok, word, 0), 64)
        value = np.where(ok, np.left_shift(np.uint64(1), bit.astype(np.uint64)), np.uint64(0))
        bits[np.arange(len(words)), lane] |= value  # one word per row per column: no clashes
    return bits


def words_to_text(words: npt.NDArray[np.int16]) -> pa.StringArray:
    """Space-joined words per row (padding -1 skipped), vectorised in Arrow."""
    vocab = pa.array(VOCAB, pa.string())
    cols = [
        pc.take(vocab, pa.array(words[:, j], mask=words[:, j] < 0)) for j in range(words.shape[1])
    ]
    joined = pc.binary_join_element_wise(*cols, " ", null_handling="skip")
    return joined if isinstance(joined, pa.StringArray) else pa.array(joined, pa.string())


def build_world(seed: int, scale: float, epoch: dt.date, horizon: dt.date) -> World:
    """The world from ``epoch`` to ``horizon`` inclusive (a prefix of the same infinite world)."""
    n_days = horizon.toordinal() - epoch.toordinal() + 1
    products, users, counts_p, counts_u = _grow(seed, scale, epoch, n_days)
    return World(
        seed=seed,
        scale=scale,
        epoch=epoch,
        horizon=horizon,
        product_ids=fixed_ids(b"p", np.arange(len(products["type"])), 7),
        product_names=words_to_text(products["words"]),
        product_type=products["type"],
        product_words=products["words"],
        name_bits=word_bits(products["words"]),
        product_currency=products["currency"],
        list_price=products["price"],
        is_partner=products["partner"],
        quality=products["quality"],
        popularity=products["popularity"],
        product_created=products["created"],
        products_by_day=counts_p,
        discount_code=_discount_spells(seed, epoch, counts_p),
        user_ids=fixed_ids(b"u", np.arange(len(users["country"])), 7),
        user_country=users["country"],
        user_signup=users["signup"],
        sensitivity=users["sensitivity"],
        type_pref=users["type_pref"],
        activity=users["activity"],
        users_by_day=counts_u,
        usd_per_unit=_fx_history(seed, epoch, n_days),
    )
