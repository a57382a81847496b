"""A small corpus with distinct topics, ingested for real (minilm, embedded Qdrant) by the read-path tests.

Every section is about one thing, so a question about that thing has one right answer; `kitchen.md` and
`kitchen-copy.md` hold the same text, so deduplication has something to remove.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ragkit
from ragkit.kit import Kit

COLLECTION = "corpus"
# Small enough that every second-level heading becomes a section of its own.
MAX_TOKENS = 128

ASTRONOMY = """\
# Astronomy notes

## Black holes

A black hole is a region of spacetime where gravity is so strong that nothing, not even light, can
escape. Its boundary is called the event horizon. Stephen Hawking predicted that black holes slowly lose
mass by emitting Hawking radiation, so the smallest ones would eventually evaporate. The first image of a black hole's shadow was taken in
2019 by the Event Horizon Telescope.

## Exoplanets

Most exoplanets are found by the transit method: a telescope watches a star dim slightly when a planet
passes in front of it. The radial velocity method instead measures the wobble of the star as the
planet's gravity pulls it back and forth. The first exoplanet around a Sun-like star, 51 Pegasi b, was
found in 1995.

## Comets

Comets are loose balls of ice, dust and rock from the outer solar system. When a comet nears the Sun,
the ice turns to gas and forms a glowing coma, and the solar wind pushes its tail so that the tail always
points away from the Sun. Halley's Comet returns to the inner solar system about every 76 years.
"""

KITCHEN = """\
# Kitchen guide

## Sourdough bread

Sourdough rises without commercial yeast. A starter of flour and water captures wild yeast and lactic
acid bacteria, which ferment the dough slowly overnight. The long fermentation gives the bread its sour
taste and an open, chewy crumb. Feed the starter every day with fresh flour and water to keep it lively.

## Knife care

Keep kitchen knives sharp on a whetstone, holding the blade at a steady angle of about fifteen degrees.
A honing steel straightens the edge between sharpenings. Never put good knives in the dishwasher, where
they knock against other utensils and dull. Wash and dry them by hand right after use.

## Coffee brewing

Espresso forces hot water through finely ground coffee at high pressure for about thirty seconds. If
the shot tastes sour the coffee is under-extracted, so grind finer; if it tastes bitter it is
over-extracted, so grind coarser. Filter coffee uses a coarser grind and a gentler pour over several minutes.
"""

VOLCANOES = """\
Volcanoes

Volcanoes form where molten rock reaches the surface of the Earth. Many of them sit along the edges of
tectonic plates, around the Pacific Ocean in the Ring of Fire. Others grow over hot spots in the middle
of a plate, like the islands of Hawaii. Eruptions can be gentle flows of lava or violent explosions of
ash. Pumice is a volcanic rock so full of gas bubbles that it floats on water. Volcanic ash makes soil
fertile, which is why farms climb the slopes of active volcanoes.
"""


def write(folder: Path) -> Path:
    """The corpus as files under `folder/docs`."""
    docs = folder / "docs"
    docs.mkdir(parents=True)
    (docs / "astronomy.md").write_text(ASTRONOMY)
    (docs / "kitchen.md").write_text(KITCHEN)
    (docs / "kitchen-copy.md").write_text(KITCHEN)
    (docs / "volcanoes.txt").write_text(VOLCANOES)
    return docs


@dataclass
class Ingested:
    kit: Kit
    docs: Path
    store: Path


def ingest(folder: Path) -> Ingested:
    """The corpus ingested into the embedded store `folder/store`, with an open kit over it.

    The kit stays open (an embedded store admits one client at a time): close it when done.
    """
    docs = write(folder)
    kit = ragkit.open(COLLECTION, store=folder / "store", model="minilm", device="cpu")
    report = kit.ingest(docs, workers=0, max_tokens=MAX_TOKENS)
    assert report.ok, report.summary()
    return Ingested(kit, docs, folder / "store")
