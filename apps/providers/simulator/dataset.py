"""The simulator's deterministic synthetic people, and who each vendor knows.

Every person is derived from an identity key (normalised name + organisation) and the seed,
so the simulator answers any submitted contact, not only the listed ones:

* key = ``"<first> <last>|<org>"`` with names ASCII-folded, lowercased, non-letters dropped;
  ``org`` is the domain when given, else the company name as ``<slug>.com``, else the
  LinkedIn profile slug. The listed data set (``people()``) uses the same keys, so looking a
  listed person up by name and domain finds exactly that person.
* whether vendor V knows the person = ``u(seed, V, key) < hit_rate[V]`` where ``u`` is a
  SHA-256-derived number in [0, 1): independent per vendor, so vendors know different people
  and the waterfall order changes who answers.
* what V knows (work email, verification status, score, phone, personal email) comes from
  further draws of ``u`` with V in the salt; the address itself depends only on the person,
  so two vendors never disagree about it.
* a name containing ``notfound`` is unknown to every vendor (as in the sandbox).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache

import phonenumbers

from apps.core.text import ascii_fold, normalize_domain, normalize_linkedin

VENDORS = ("hunter", "pdl", "apollo")

FIRST_NAMES = (
    "ada alan barbara claude donald edsger frances grace guido hedy ivan john katherine "
    "linus margaret niklaus ole radia rosalind sophie tim vint whitfield yukihiro ken dennis "
    "bjarne anita carol dorothy emmy fran gertrude hannah irene joan karen lynn mary nancy"
).split()
LAST_NAMES = (
    "lovelace turing liskov shannon knuth dijkstra allen hopper rossum lamarr sutherland "
    "mccarthy johnson torvalds hamilton wirth dahl perlman franklin wilson berners cerf diffie "
    "matsumoto thompson ritchie stroustrup borg shaw hodgkin noether kamen elion ghosh moore"
).split()
COMPANY_PARTS_A = "acme blue bright cloud data delta ever far green iron lumen nova orbit".split()
COMPANY_PARTS_B = "labs works systems logic metrics forge stack scale grid base wave".split()
TLDS = ("com", "io", "co", "dev")
TITLES = (
    "Head of Growth",
    "VP Engineering",
    "Software Engineer",
    "Account Executive",
    "Marketing Manager",
    "CTO",
    "Data Scientist",
    "Product Manager",
    "Sales Director",
    "Customer Success Lead",
)
# (region, weight): where the synthetic people's phones are.
PHONE_REGIONS = (("US", 50), ("GB", 20), ("DE", 15), ("FR", 15))
PERSONAL_DOMAINS = ("gmail.com", "outlook.com", "proton.me", "yahoo.com")
_NON_LETTERS = re.compile(r"[^a-z0-9]")


def u(*parts: object) -> float:
    """A deterministic number in [0, 1) from the parts (SHA-256 of their joined text)."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick(seq: tuple | list, *parts: object) -> object:
    return seq[int(u(*parts) * len(seq))]


def _token(value: str) -> str:
    return _NON_LETTERS.sub("", ascii_fold(value).lower())


def org_of(*, domain: str = "", company: str = "", linkedin_url: str = "") -> str:
    if domain:
        return normalize_domain(domain) or domain.lower()
    if company:
        slug = _token(company)
        if "." in company and normalize_domain(company):  # PDL's `company` may be a website
            return normalize_domain(company) or company
        return f"{slug}.com" if slug else ""
    if linkedin_url:
        return normalize_linkedin(linkedin_url) or ""
    return ""


def identity(first: str, last: str, org: str) -> str:
    return f"{_token(first)} {_token(last)}|{org}"


@dataclass(frozen=True)
class Person:
    key: str
    first_name: str
    last_name: str
    company: str
    domain: str
    linkedin_url: str
    title: str
    email: str
    phone: str  # E.164
    phone_country: str
    personal_email: str


@cache
def person_for(key: str, seed: int) -> Person:
    """The synthetic person behind an identity key (same answer for every vendor)."""
    names, _, org = key.partition("|")
    first, _, last = names.partition(" ")
    domain = org if "." in org and "/" not in org else f"{_token(org) or 'unknown'}.com"
    company = domain.split(".")[0].capitalize()
    pattern = pick(("first.last", "flast", "first", "firstlast", "first_last"), seed, domain)
    local = {
        "first.last": f"{first}.{last}",
        "flast": f"{first[:1]}{last}",
        "first": first,
        "firstlast": f"{first}{last}",
        "first_last": f"{first}_{last}",
    }[str(pattern)]
    region = _weighted_region(seed, key)
    slug_tail = int(u(seed, key, "li") * 1e4)
    return Person(
        key=key,
        first_name=first.capitalize(),
        last_name=last.capitalize(),
        company=company,
        domain=domain,
        linkedin_url=f"https://www.linkedin.com/in/{first}-{last}-{slug_tail:04d}",
        title=str(pick(TITLES, seed, key, "title")),
        email=f"{local or 'contact'}@{domain}",
        phone=_phone(region, seed, key),
        phone_country=region,
        personal_email=f"{first}.{last}{int(u(seed, key, 'pe') * 99)}@"
        f"{pick(PERSONAL_DOMAINS, seed, key, 'pd')}",
    )


def _weighted_region(seed: int, key: str) -> str:
    total = sum(w for _, w in PHONE_REGIONS)
    point = u(seed, key, "region") * total
    for region, weight in PHONE_REGIONS:
        point -= weight
        if point < 0:
            return region
    return PHONE_REGIONS[0][0]


def _phone(region: str, seed: int, key: str) -> str:
    """A number that ``phonenumbers`` accepts as a valid mobile of ``region``."""
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    national = str(example.national_number)
    for attempt in range(20):
        tail = f"{int(u(seed, key, 'phone', attempt) * 10**4):04d}"
        candidate = phonenumbers.parse(f"+{example.country_code}{national[:-4]}{tail}")
        if phonenumbers.is_valid_number(candidate):
            return phonenumbers.format_number(candidate, phonenumbers.PhoneNumberFormat.E164)
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)


@dataclass(frozen=True)
class Knowledge:
    """What one vendor knows about one person (None = not known at all)."""

    email_status: str  # hunter-style: valid / accept_all / unknown / invalid
    score: int  # 0-100
    has_phone: bool
    has_personal_email: bool


def knowledge(vendor: str, person: Person, *, seed: int, hit_rate: float) -> Knowledge | None:
    if "notfound" in person.key.split("|")[0].replace(" ", ""):
        return None
    if u(seed, vendor, person.key, "knows") >= hit_rate:
        return None
    status_draw = u(seed, vendor, person.key, "status")
    status = (
        "valid"
        if status_draw < 0.72
        else "accept_all"
        if status_draw < 0.87
        else "unknown"
        if status_draw < 0.97
        else "invalid"
    )
    return Knowledge(
        email_status=status,
        # Mostly confident answers; about one in five below the default threshold of 80.
        score=int(75 + u(seed, vendor, person.key, "score") * 25),
        has_phone=u(seed, vendor, person.key, "phone") < 0.75,
        has_personal_email=u(seed, vendor, person.key, "personal") < 0.6,
    )


@cache
def companies(seed: int, count: int) -> tuple[tuple[str, str], ...]:
    """(name, domain) of ``count`` synthetic companies."""
    seen: dict[str, str] = {}
    index = 0
    while len(seen) < count:
        a = pick(COMPANY_PARTS_A, seed, "ca", index)
        b = pick(COMPANY_PARTS_B, seed, "cb", index)
        tld = pick(TLDS, seed, "tld", index)
        name = f"{str(a).capitalize()}{str(b).capitalize()}"
        domain = f"{a}{b}{index if index >= 50 else ''}.{tld}"
        seen.setdefault(domain, name)
        index += 1
    return tuple((name, domain) for domain, name in seen.items())


def people(seed: int, company_count: int, per_company: int) -> list[Person]:
    """The listed data set: ``per_company`` people at each of ``company_count`` companies."""
    result: dict[str, Person] = {}
    for c_index, (_name, domain) in enumerate(companies(seed, company_count)):
        p_index = added = 0
        while added < per_company:
            first = str(pick(FIRST_NAMES, seed, "fn", c_index, p_index))
            last = str(pick(LAST_NAMES, seed, "ln", c_index, p_index))
            key = identity(first, last, domain)
            if key not in result:
                result[key] = person_for(key, seed)
                added += 1
            p_index += 1
    return list(result.values())
