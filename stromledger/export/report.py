"""What verifying an export found: its problems (each with a stable reason code) and what it checked."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Problem:
    reason: str  # stable code, e.g. file_hash, certificate_bad_signature, result_mismatch
    file: str
    where: str  # "line 7 (MaLo 41373559241), column import_wh", "segment 23", "signature 2", or ""
    message: str

    def __str__(self) -> str:
        where = f" {self.where}:" if self.where else ""
        return f"{self.file}:{where} {self.reason}: {self.message}"


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    chain_id: str = ""
    height: int | None = None
    period: int | None = None
    version: int | None = None
    seal_hash: str = ""
    files: int = 0  # files checked, the manifest included
    meter_points: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        if self.ok:
            return (f"valid: chain {self.chain_id}, period {self.period} version {self.version}, height "
                    f"{self.height}, seal {self.seal_hash}, {self.meter_points} meter points, {self.files} files")
        return "\n".join(str(p) for p in self.problems)
