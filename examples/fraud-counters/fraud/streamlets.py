"""Streamlets of the fraud-counters example: card transactions in, one alert per card and
day when the day's spending passes a limit.

The spending of each card is keyed state (``State``): the transactions are keyed by card,
so all of one card's transactions reach the replica that owns its partition, in order,
and that replica keeps the card's running totals across records, restarts and (on Kafka)
rebalances.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from streamlets import Inlet, Outlet, State, Streamlet
from streamlets.library import FileSource


class Transaction(BaseModel):
    """One card payment."""

    id: str
    card_id: str
    amount: float = Field(description="in the card's currency; a refund is negative")
    merchant: str
    at: datetime


class Spending(BaseModel):
    """What a card spent on one day (UTC) so far."""

    day: date
    spent: float = 0.0
    transactions: int = 0
    alerted: bool = False


class SpendingAlert(BaseModel):
    """A card whose spending of the day went past the limit: sent once per card and day."""

    card_id: str
    day: date
    spent: float
    limit: float
    transactions: int
    transaction_id: str = Field(description="the transaction that crossed the limit")
    at: datetime
    lifetime: float = Field(description="everything the card spent, the whole stream long")


class TransactionSource(FileSource):
    """Reads transactions from a JSON Lines file, keyed by card: all of one card's
    transactions go to one partition, in order."""

    # FileSource's own outlet takes its schema from config: this one is fixed, and keyed.
    out = Outlet(Transaction, key="card_id")  # type: ignore[assignment]


class CardSpending(Streamlet):
    """Adds each transaction to its card's spending of the day and alerts once per card and
    day when it passes ``daily_limit``."""

    transactions = Inlet(Transaction, timestamp="at")
    alerts = Outlet(SpendingAlert)  # keyed by card, like the transaction it comes from

    today = State(Spending)  # per card: the day's spending (None before its first)
    lifetime = State(float, default=0.0)  # per card: everything it spent

    class Config(BaseModel):
        daily_limit: float = Field(1000.0, gt=0, description="alert above this per day")

    config: Config

    def process(self, tx: Transaction) -> SpendingAlert | None:
        day = tx.at.date()
        spending = self.today.get()
        if spending is None or spending.day < day:
            spending = Spending(day=day)  # the card's first transaction of a new day
        elif spending.day > day:
            return None  # a late transaction of a day already over: counted nowhere
        spending.spent += tx.amount
        spending.transactions += 1
        lifetime = self.lifetime.get() + tx.amount
        self.lifetime.set(lifetime)
        alert = None
        if spending.spent > self.config.daily_limit and not spending.alerted:
            spending.alerted = True
            alert = SpendingAlert(
                card_id=tx.card_id,
                day=day,
                spent=round(spending.spent, 2),
                limit=self.config.daily_limit,
                transactions=spending.transactions,
                transaction_id=tx.id,
                at=tx.at,
                lifetime=round(lifetime, 2),
            )
        self.today.set(spending)  # a value changed in place is kept only once set again
        return alert
