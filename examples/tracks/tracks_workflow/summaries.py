"""Movement summaries from GPS fixes: great-circle distance, duration and speed per animal."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

EARTH_RADIUS_KM = 6371.0088


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points in kilometres."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlam = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def parse_time(value: str) -> datetime:
    """ISO 8601 time of a fix (a trailing Z is accepted)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def read_fixes_csv(text: str) -> list[dict[str, Any]]:
    """Fixes from CSV text with columns animal_id, time, lat, lon."""
    rows = csv.DictReader(io.StringIO(text))
    return [
        {
            "animal_id": row["animal_id"],
            "time": row["time"],
            "lat": float(row["lat"]),
            "lon": float(row["lon"]),
        }
        for row in rows
    ]


def summarize(
    fixes: Iterable[dict[str, Any]], *, speed_unit: str = "km/h", max_speed_kmh: float = 120.0
) -> dict[str, Any]:
    """Per-animal distance, duration and speed.

    A fix that would need a speed above ``max_speed_kmh`` from the last good fix is dropped as a
    GPS error (and counted).
    """
    by_animal: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for fix in fixes:
        by_animal[str(fix["animal_id"])].append(fix)

    animals = []
    for animal_id, track in sorted(by_animal.items()):
        track.sort(key=lambda fix: parse_time(fix["time"]))
        distance = hours = top_speed = 0.0
        dropped = 0
        last = track[0]
        for fix in track[1:]:
            step_km = haversine_km(last["lat"], last["lon"], fix["lat"], fix["lon"])
            step_h = (parse_time(fix["time"]) - parse_time(last["time"])).total_seconds() / 3600
            if step_h <= 0 or step_km / step_h > max_speed_kmh:
                dropped += 1  # a duplicate time or a jump no animal makes: a GPS error
                continue
            distance += step_km
            hours += step_h
            top_speed = max(top_speed, step_km / step_h)
            last = fix
        factor = 1.0 if speed_unit == "km/h" else 1000 / 3600
        animals.append(
            {
                "animal_id": animal_id,
                "fixes": len(track),
                "dropped_fixes": dropped,
                "distance_km": round(distance, 3),
                "duration_h": round(hours, 3),
                "mean_speed": round(distance / hours * factor, 3) if hours else 0.0,
                "max_speed": round(top_speed * factor, 3),
            }
        )
    return {
        "speed_unit": speed_unit,
        "animals": animals,
        "total_distance_km": round(sum(a["distance_km"] for a in animals), 3),
    }
