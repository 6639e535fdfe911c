"""The simulated company: employees E001..E99999, each in a team with a manager.

Odd numbers are in Sales (manager ``alice``), even numbers in Engineering (manager ``bob``), the
demo's two managers. E013 has no bonus plan: the bonus system answers 404 (a final error).
Every name is made up. The bonus is the salary base times the rate of the rating, and the
rate rises with the rating.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

EMPLOYEE_RE = re.compile(r"^E(\d{3,5})\Z")
NO_BONUS_PLAN = {"E013"}
FIRST = [
    "Mira",
    "Tobin",
    "Odile",
    "Kasimir",
    "Linnea",
    "Bastian",
    "Yara",
    "Ferris",
    "Junie",
    "Ansel",
]
LAST = [
    "Ashdown",
    "Brightwater",
    "Corvell",
    "Dunmore",
    "Fenwright",
    "Gallowmere",
    "Holloway",
    "Quenby",
]
TEAMS = {1: ("Sales", "alice"), 0: ("Engineering", "bob")}
RATINGS = ["meets", "exceeds", "outstanding"]
RATES = {"meets": Decimal(5), "exceeds": Decimal(8), "outstanding": Decimal(12)}  # percent


@dataclass(frozen=True)
class Employee:
    id: str
    number: int
    name: str
    team: str
    manager: str

    @property
    def salary_base(self) -> Decimal:
        return Decimal(3000 + (self.number * 137) % 2000).quantize(Decimal("0.01"))

    def bonus(self, period: str) -> tuple[Decimal, str, Decimal]:
        """(amount, rating, rate in percent) for ``period``."""
        seed = self.number * 31 + int(period.replace("-", ""))
        rating = RATINGS[seed % len(RATINGS)]
        rate = RATES[rating]
        return (self.salary_base * rate / 100).quantize(Decimal("0.01")), rating, rate


def find(employee_id) -> Employee | None:
    match = EMPLOYEE_RE.match(employee_id) if isinstance(employee_id, str) else None
    if match is None or int(match.group(1)) == 0:
        return None
    number = int(match.group(1))
    team, manager = TEAMS[number % 2]
    name = f"{FIRST[number % len(FIRST)]} {LAST[number % len(LAST)]}"
    return Employee(id=employee_id, number=number, name=name, team=team, manager=manager)
