"""STREET_ADDRESS detection: a house number next to a street word, in the forms Europe and the
Anglosphere write them.

A street address is what makes a location personal: "Springfield" is shared by thousands, "742
Evergreen Terrace" by one household. An address is a number anchored to a street word, so
the detector looks for the street word first (a closed class: Street, Ave, Straße, rue, via,
calle, ulica, gatan, ...) and accepts it only with a house number beside it. That keeps the
words that name streets ("Park", "Grove", "Way") from firing in ordinary prose, where no house
number stands next to them. Cities and countries alone are not redacted: on their own they do
not identify anyone, and support and travel data are about them.

Pure standard library, always on with the other PII rules.
"""

from __future__ import annotations

import re
from functools import cache

from tuneloop.curate.findings import Finding

KIND = "STREET_ADDRESS"


def _words(block: str) -> list[str]:
    return block.split()


# Street words that follow the street's name: USPS Publication 28 suffixes and their
# abbreviations (English-speaking countries, India's "Marg", "Chowk", ...).
_SUFFIXES = _words("""
alley aly allee alleyway annex anx arcade arc avenue ave av bayou beach bch bend bnd bluff blf
bluffs bottom boulevard blvd branch br bridge brg brook brk brooks burg burgs bypass byp camp
canyon cape causeway cswy center ctr centre circle cir circles cliff cliffs close common
commons corner cor corners court ct courts cove coves creek crk crescent cres crest crossing
xing crossroad curve dale dl dam drive dr drives divide dv estate estates est expressway expy
extension ext ferry fry field fld fields flat flats ford fords forest frst forge forges fork
forks fort ft freeway fwy garden gdn gardens gdns gateway gtwy glen glens green grn greens
grove grv groves harbor hbr harbors haven hvn heights hts highway hwy hill hl hills hls hollow
holw inlet junction jct junctions knoll knls knolls lake lk lakes landing lndg lane ln lodge
loop mall manor manors meadow meadows mews mill mills motorway mount mt mountain mtn mountains
orchard oval overpass park parks parkway pkwy parade passage path pike pine pines place pl
plain plains plaza plz prairie radial ramp ranch rapid rapids ridge rdg ridges river riv road
rd roads route rte row rue shoal shoals shore shores skyway spring springs spur spurs square sq
squares stravenue stream street st streets summit smt terrace ter throughway trace trafficway
trail trl trailer tunnel turnpike tpke underpass valley vly valleys via viaduct view views
village vlg villages ville vista walk walks way ways wharf wynd yard parkways course quad quay
ride rise wade grange gate gates chase reach strand esplanade promenade circuit concourse
boardwalk crossway glade heath hill close fairway marg chowk nagar ganj path peth gali colony
enclave zila mission
""")

# Street words written before the street's name (Romance and Slavic languages, Dutch, ...).
_PREFIXES = _words("""
rue avenue boulevard bd chemin allée place impasse quai cours route calle avenida av avda paseo
plaza camino ronda callejón callejon cuesta carrera carretera cañada acceso pasadizo
urbanización urbanizacion pasaje travesía travesia glorieta rambla vía via viale piazza
piazzale corso vicolo largo contrada stretto rotonda borgo strada lungomare incrocio canale rua
travessa praça praca alameda largo estrada rodovia passarela colônia ulica ul aleja al plac pl
osiedle
""")

# Street words that end a compound name in German, Dutch and the Nordic languages.
_COMPOUND_ENDINGS = _words("""
straße strasse weg gasse platz allee damm ufer chaussee steig pfad markt straat laan plein
gracht kade singel dreef hof baan pad boulevard gatan vägen gränd torget stigen backen gade vej
vænget allé plads stræde veien gata stien vollen tie katu kuja polku kaari bulevardi
""")

_NUMBER = r"\d{1,5}[A-Za-z]?(?:\s?[/-]\s?\d{1,4}[A-Za-z]?)?"
_NAME_WORD = r"(?:[A-ZÀ-ÞŁŚŻŹĆŃ][\w'’.-]*|d[aeiou]s?|de[l]?|la|le|van|von|der|den|di|du|i)"
_UNIT_WORD = (
    r"(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Flat|Floor|Fl\.?|#|Puerta|Piso|Piano|Appartamento"
    r"|Interno)"
)
_UNIT = rf"(?:,? {_UNIT_WORD} ?#?\w{{1,5}})"


def _alternation(words: list[str]) -> str:
    ordered = sorted({w.replace(".", "") for w in words}, key=len, reverse=True)
    return "|".join(re.escape(w) for w in ordered)


@cache
def _patterns() -> tuple[re.Pattern[str], ...]:
    suffix = _alternation(_SUFFIXES)
    prefix = _alternation(_PREFIXES)
    ending = _alternation(_COMPOUND_ENDINGS)
    # "742 Evergreen Terrace", "17066 Heather Grove Apt. 915", "14/17, Sodhi Chowk",
    # "Flat 17 Janet Meadows", "8, rue Jeanne Henry".
    number_first = (
        rf"(?:\b(?:Flat|Unit|Studio|Level|Apt\.?|Suite|H\.?\s?No\.?) ?{_NUMBER},? "
        rf"(?:{_NUMBER},? )?|\b{_NUMBER},? )"
        rf"(?:(?:(?i:{prefix})\.? (?:{_NAME_WORD} ){{0,3}}{_NAME_WORD})"
        rf"|(?:(?:{_NAME_WORD} ){{1,3}}(?i:{suffix})\b\.?))"
        rf"(?: (?:N|S|E|W|NE|NW|SE|SW)\b)?{_UNIT}?"
    )
    # "Via Elisa, 991", "Calle Mayor 5", "ulica Paderewskiego 77", "al. Leśna 74/39".
    prefix_first = (
        rf"\b(?i:{prefix})\.? (?:{_NAME_WORD} ){{0,3}}{_NAME_WORD},? "
        rf"(?:{_NUMBER}|S/N)\b{_UNIT}?"
    )
    # "Rose-Krebs-Straße 7", "Storgatan 77", "Haakoninlahdentie 77", "Unter den Linden 77" is
    # out of reach (no street word) and said so in docs/curation.md.
    compound = (
        rf"\b(?:[A-ZÀ-Þ][\w-]* ){{0,2}}(?:[A-ZÀ-Þ][\w-]*(?i:{ending})|(?i:{ending}))\.?"
        rf" {_NUMBER}\b{_UNIT}?"
    )
    return tuple(re.compile(p) for p in (number_first, prefix_first, compound))


class AddressDetector:
    """Street addresses: a street word with a house number next to it."""

    kinds = (KIND,)

    def find(self, text: str) -> list[Finding]:
        if not any(c.isdigit() for c in text):
            return []
        out = []
        for pattern in _patterns():
            for m in pattern.finditer(text):
                value = m.group().rstrip(" ,")
                if value.endswith(".") and len(value.rsplit(None, 1)[-1]) > 5:
                    value = value[:-1]  # a sentence's full stop, not "St." or "Ave."
                out.append(Finding(KIND, m.start(), m.start() + len(value), value))
        return out
