"""Tables built the way people's tables are, for benchmarks (the tests build their own small ones).

:func:`churn_csv` writes a customer-churn table: an integer column (tenure in months), 0/1 columns
(senior citizen, phone service), text levels (contract, payment method, gender, yes/no columns),
real columns with two decimals (monthly and total charges), and an imbalanced yes/no label drawn
from a known rule with noise.  Offline and seeded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["churn_csv"]


def churn_csv(path: str | Path, n: int = 4000, seed: int = 0, churn_rate: float = 0.2) -> Path:
    """Write the churn table to ``path`` (comma-separated, a header row, UTF-8) and return it."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 73, n)
    senior = (rng.random(n) < 0.16).astype(int)
    phone = (rng.random(n) < 0.9).astype(int)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.55, 0.21, 0.24])
    payment = rng.choice(["Electronic check", "Mailed check", "Bank transfer", "Credit card"], n)
    gender = rng.choice(["Female", "Male"], n)
    partner = rng.choice(["Yes", "No"], n)
    tech = rng.choice(["Yes", "No", "No internet service"], n, p=[0.3, 0.5, 0.2])
    monthly = np.round(np.clip(rng.normal(65, 30, n), 18.25, 118.75), 2)
    total = np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.9, 1.1, n), 2)
    z = (-0.06 * tenure + 1.3 * (contract == "Month-to-month") + 0.5 * (payment == "Electronic check")
         + 0.4 * senior + 0.012 * monthly - 0.6 * (tech == "Yes") + rng.normal(0, 0.6, n))
    cut = np.quantile(z, 1.0 - churn_rate)
    churn = np.where(z > cut, "Yes", "No")
    lines = ["gender,senior_citizen,partner,tenure,phone_service,tech_support,contract,payment_method,"
             "monthly_charges,total_charges,churn"]
    for i in range(n):
        lines.append(f"{gender[i]},{senior[i]},{partner[i]},{tenure[i]},{phone[i]},{tech[i]},{contract[i]},"
                     f"{payment[i]},{monthly[i]:.2f},{total[i]:.2f},{churn[i]}")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
