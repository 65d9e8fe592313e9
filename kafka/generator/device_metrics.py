"""Readings of the stores' IoT sensors: temperature with a daily cycle, humidity and pressure around each
device's own level, and a battery that drains day by day. Twelve devices per tenant."""

from __future__ import annotations

import math
import random
from typing import Any

from lakehouse.config.specs import EventTypeSpec
from lakehouse.kafka.generator.base import DAY_MS, HOUR_MS, GeneratorOptions, Model, picker


class DeviceMetrics(Model):
    """The ``device_metrics`` event type."""

    unknown_event_types = ("calibration", "heartbeat")
    null_fields = ("tenant_id", "event_timestamp", "metric", "value", "unit")
    _UNITS = {"temperature": "C", "humidity": "%", "pressure": "hPa", "battery": "%"}
    _IMPLAUSIBLE = {
        "temperature": (150.0, -90.0),
        "humidity": (140.0, -5.0),
        "pressure": (1500.0, 200.0),
        "battery": (180.0, -5.0),
    }
    _DEVICES_PER_TENANT = 12

    def __init__(self, spec: EventTypeSpec, options: GeneratorOptions, rng: random.Random) -> None:
        super().__init__(spec, options, rng)
        self.devices: dict[str, list[tuple[str, dict[str, float]]]] = {
            tenant: [
                (
                    f"{tenant}-D{n:03d}",
                    {
                        "temperature": rng.uniform(19, 24),
                        "humidity": rng.uniform(35, 60),
                        "pressure": rng.uniform(1005, 1020),
                        "battery": rng.uniform(60, 100),
                        "drain": rng.uniform(0.5, 3.0),
                    },
                )
                for n in range(1, self._DEVICES_PER_TENANT + 1)
            ]
            for tenant in self.tenants
        }
        self.metric = picker(rng, tuple(self._UNITS), (1, 1, 1, 1))
        self.start_ms = int(options.start.timestamp() * 1000)

    def clean(self, tenant: str, ms: int, ts: str, remember: bool, metric: str | None = None) -> dict[str, Any]:
        """One reading of a random device of the tenant (of the given ``metric``, else a random one)."""
        rng = self.rng
        devices = self.devices[tenant]
        device_id, base = devices[int(rng.random() * len(devices))]
        metric = metric or self.metric()
        if metric == "temperature":
            hour = (ms % DAY_MS) / HOUR_MS
            value = base["temperature"] + 4 * math.sin((hour - 9) / 24 * 2 * math.pi) + rng.gauss(0, 0.4)
            value = round(min(max(value, 15.0), 35.0), 2)
        elif metric == "humidity":
            value = round(min(max(base["humidity"] + rng.gauss(0, 3), 0.0), 100.0), 1)
        elif metric == "pressure":
            value = round(min(max(base["pressure"] + rng.gauss(0, 2), 980.0), 1040.0), 1)
        else:
            days = (ms - self.start_ms) / DAY_MS
            value = round(min(max(base["battery"] - base["drain"] * days, 0.0), 100.0), 1)
        event = self.envelope("reading", 1, tenant, ts)
        event.update(device_id=device_id, metric=metric, value=value, unit=self._UNITS[metric])
        return event

    def invalid(self, fault: str, tenant: str, ms: int, ts: str) -> dict[str, Any]:
        """Adds values that are not numbers, and implausible values or units (``rule_break``)."""
        event = super().invalid(fault, tenant, ms, ts)
        rng = self.rng
        if fault == "wrong_type":
            event["value"] = rng.choice(("n/a", "23,5", "NaN"))
        elif fault == "rule_break":
            if rng.random() < 0.8:
                event["value"] = rng.choice(self._IMPLAUSIBLE[event["metric"]])
            else:
                event["unit"] = "hPa" if event["metric"] != "pressure" else "%"
        return event

    def latin1(self, event: dict[str, Any]) -> tuple[str, bytes]:
        """The device id, with a Latin-1 room name."""
        return "device_id", f"{event['device_id']}-Kühlraum".encode("latin-1")
