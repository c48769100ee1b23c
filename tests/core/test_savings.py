"""The savings engine against savings.md: the worked example of §2, the counting rules of §6, the calendar of §3."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.contracts import Contract, ContractInvalid, QuantityChange, committed_as_of, contract_calendar
from core.money import Money
from core.records import Platform
from core.savings import (
    Figure,
    FigureStatus,
    Scenario,
    SeatCounts,
    SeatState,
    annual_unit_cost,
    count_users_left,
    forecast,
    gov_expected,
    months_between,
    net,
    potential_annual,
    realised_in_fy,
    realised_run_rate,
    reclaimable,
    snapshot_row,
    stranded,
    tally_seats,
    true_up,
    utilisation,
    waste,
)

EUR = "EUR"


def euros(amount: str | int) -> Money:
    return Money(Decimal(amount), EUR)


# savings.md §2 worked example: Zoom Business at €150/user/year, annual term renewing 2027-03-01, 1 000 committed,
# floor 600; 900 users migrated and downgraded by 2026-11-01.
ZOOM_BUSINESS = Contract(vendor="Zoom Video Communications", contract_ref="ZOOM-2026-001", platform=Platform.ZOOM,
                         sku_key="Zoom Business", unit_price=euros(150), committed_qty=1000, commit_floor=600,
                         term_start=date(2026, 3, 1), renewal_date=date(2027, 3, 1), notice_days=90)
RECLAIMED_900 = SeatCounts(assigned=100, required_remaining=100, reclaimed=900, active=100)
# At renewal the quantity can fall to max(100 needed, 600 floor): the amendment asks for 100, with evidence.
AMENDMENT = QuantityChange("ZOOM-2026-001", date(2027, 3, 1), 100, evidence="order 2027-114", recorded_by="DAF")


def test_worked_example_stranded_on_2026_11_01() -> None:
    figure = stranded([(RECLAIMED_900, ZOOM_BUSINESS, 1000)], on=date(2026, 11, 1))
    assert figure.amount == euros(45000)  # 900 × 150 × 4/12
    assert figure.status is FigureStatus.BOOKED


def test_worked_example_realised_run_rate_is_held_at_the_floor() -> None:
    before = realised_run_rate(ZOOM_BUSINESS, [AMENDMENT], on=date(2026, 11, 1))
    assert before.amount == euros(0)  # not yet effective: nothing realised on 2026-11-01
    after = realised_run_rate(ZOOM_BUSINESS, [AMENDMENT], on=date(2027, 3, 1))
    assert after.amount == euros(60000)  # (1 000 − 600) × 150, not 900 × 150 = 135 000
    assert after.status is FigureStatus.BOOKED
    assert after.evidence == ("order 2027-114",)
    assert committed_as_of(ZOOM_BUSINESS, [AMENDMENT], on=date(2027, 3, 1)) == 600


def test_worked_example_remaining_seats_stay_stranded_after_renewal() -> None:
    counts = RECLAIMED_900
    committed = committed_as_of(ZOOM_BUSINESS, [AMENDMENT], on=date(2027, 3, 1))
    assert counts.unassigned_but_committed(committed) == 500  # the other 500 reclaimed seats


def test_worked_example_benchmark_beside_the_contract_figures() -> None:
    benchmark = gov_expected(900)
    assert benchmark.amount == euros(9000)
    assert not hasattr(benchmark, "status")  # a type of its own, not a Figure: never summed with contract figures
    assert gov_expected(900, years=2).amount == euros(18000)


def test_worked_example_snapshot_rows() -> None:
    computed_at = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    november = snapshot_row(tenant="culture", contract=ZOOM_BUSINESS, counts=RECLAIMED_900, changes=[AMENDMENT],
                            month=date(2026, 11, 1), users_left=900, migrated_users=900, computed_at=computed_at)
    assert (november.stranded, november.realised_run_rate, november.gov_expected) == (
        euros(45000), euros(0), euros(9000))
    assert (november.committed, november.commit_floor, november.reclaimed) == (1000, 600, 900)
    assert november.annual_unit_cost == euros(150)
    assert november.potential_annual == euros(0)  # every reclaimable seat was reclaimed: it is stranded now
    march = snapshot_row(tenant="culture", contract=ZOOM_BUSINESS, counts=RECLAIMED_900, changes=[AMENDMENT],
                         month=date(2027, 3, 1), users_left=900, migrated_users=900, computed_at=computed_at)
    assert march.realised_run_rate == euros(60000)
    assert march.realised_in_fy == euros(50000)  # 400 × 150 × 10/12, March to December
    assert march.status is FigureStatus.BOOKED and march.evidence_refs == ("order 2027-114",)
    assert march.net == euros(60000)  # no charge-back in the default scenario
    assert march.stranded == euros(0)  # the renewal day: no month left in the term that ends
    again = snapshot_row(tenant="culture", contract=ZOOM_BUSINESS, counts=RECLAIMED_900, changes=[AMENDMENT],
                         month=date(2027, 3, 1), users_left=900, migrated_users=900, computed_at=computed_at)
    assert again == march  # recomputed idempotently


def test_potential_before_the_release() -> None:
    migrated = SeatCounts(assigned=1000, required_remaining=100)
    figure = potential_annual([(migrated, ZOOM_BUSINESS, 1000)], on=date(2026, 10, 1))
    assert figure.amount == euros(135000)
    assert figure.status is FigureStatus.BOOKED


def test_spare_seats_count_in_potential_once() -> None:
    counts = SeatCounts(assigned=700, required_remaining=700, reclaimed=200)  # 100 spare seats never assigned
    assert counts.unassigned_but_committed(1000) == 200
    assert counts.unassigned_spare(1000) == 100
    assert reclaimable(assigned=700, required_remaining=700, unassigned_spare=100) == 100
    assert potential_annual([(counts, ZOOM_BUSINESS, 1000)], on=date(2026, 10, 1)).amount == euros(15000)


def test_missing_price_falls_back_to_the_benchmark_estimated() -> None:
    unpriced = Contract(vendor="Cisco", contract_ref="WEBEX-1", platform=Platform.WEBEX, sku_key="Meeting",
                        unit_price=None, committed_qty=100, term_start=date(2026, 1, 1),
                        renewal_date=date(2027, 1, 1))
    cost = annual_unit_cost(unpriced)
    assert cost == Figure(euros(10), FigureStatus.ESTIMATED)
    change = QuantityChange("WEBEX-1", date(2026, 7, 1), 40, evidence="avenant 3")
    realised = realised_run_rate(unpriced, [change], on=date(2026, 7, 1))
    assert realised.amount == euros(600) and realised.status is FigureStatus.ESTIMATED


def test_realised_without_evidence_is_estimated() -> None:
    planned = QuantityChange("ZOOM-2026-001", date(2027, 3, 1), 600)
    figure = realised_run_rate(ZOOM_BUSINESS, [planned], on=date(2027, 3, 1))
    assert figure.amount == euros(60000)
    assert figure.status is FigureStatus.ESTIMATED and figure.evidence == ()


def test_realised_uses_the_renewal_price_after_renewal() -> None:
    repriced = Contract(vendor="Zoom", contract_ref="Z-2", platform=Platform.ZOOM, sku_key="Zoom Pro",
                        unit_price=euros(150), renewal_unit_price=euros(180), committed_qty=10,
                        term_start=date(2026, 3, 1), renewal_date=date(2027, 3, 1))
    change = QuantityChange("Z-2", date(2027, 3, 1), 4, evidence="order 7")
    assert realised_run_rate(repriced, [change], on=date(2027, 3, 1)).amount == euros(1080)  # 6 × 180


def test_a_quantity_raised_again_counts_negative() -> None:
    changes = [AMENDMENT, QuantityChange("ZOOM-2026-001", date(2027, 6, 1), 700, evidence="order 2027-300")]
    figure = realised_run_rate(ZOOM_BUSINESS, changes, on=date(2027, 6, 1))
    assert figure.amount == euros(45000)  # 60 000 − 100 × 150
    assert figure.evidence == ("order 2027-114", "order 2027-300")


def test_realised_in_fiscal_year() -> None:
    assert realised_in_fy(ZOOM_BUSINESS, [AMENDMENT], fiscal_year=2027).amount == euros(50000)
    assert realised_in_fy(ZOOM_BUSINESS, [AMENDMENT], fiscal_year=2028).amount == euros(60000)  # whole year
    assert realised_in_fy(ZOOM_BUSINESS, [AMENDMENT], fiscal_year=2026).amount == euros(0)


def test_net_with_and_without_the_visio_charge_back() -> None:
    realised = realised_run_rate(ZOOM_BUSINESS, [AMENDMENT], on=date(2027, 3, 1))
    assert net(realised, migrated_users=900) == realised
    charged = net(realised, migrated_users=900,
                  scenario=Scenario(visio_cost_per_user=euros(5), one_off_costs_amortised=euros(1000)))
    assert charged.amount == euros(54500)  # 60 000 − 5 × 900 − 1 000
    assert charged.status is FigureStatus.ESTIMATED  # the charge-back is unconfirmed


def test_utilisation_and_waste() -> None:
    assert utilisation(active=75, assigned=100) == Decimal("0.75")
    assert utilisation(active=0, assigned=0) is None
    assert waste(active=75, assigned=100, unit_cost=annual_unit_cost(ZOOM_BUSINESS)).amount == euros(3750)


def test_true_up_and_the_next_true_down() -> None:
    figure = true_up(ZOOM_BUSINESS, [], peak_qty=1100, on=date(2026, 9, 1))
    assert figure.amount == euros(7500)  # 100 × 150 × 6/12
    assert true_up(ZOOM_BUSINESS, [], peak_qty=900, on=date(2026, 9, 1)).amount == euros(0)
    multi_year = Contract(vendor="Cisco", contract_ref="W-3", platform=Platform.WEBEX, sku_key="Meeting",
                          unit_price=euros(132), committed_qty=500, commit_floor=400, term_start=date(2024, 7, 1),
                          term_end=date(2027, 6, 30), renewal_date=date(2027, 7, 1),
                          true_down_dates=(date(2026, 7, 1), date(2025, 7, 1)))
    assert multi_year.next_true_down(date(2025, 12, 4)) == date(2026, 7, 1)
    assert multi_year.next_true_down(date(2026, 7, 2)) == date(2027, 7, 1)
    assert multi_year.next_true_down(date(2027, 7, 2)) is None


def test_months_between() -> None:
    assert months_between(date(2026, 11, 1), date(2027, 3, 1)) == 4
    assert months_between(date(2027, 3, 1), date(2026, 11, 1)) == 0
    assert months_between(date(2026, 1, 1), date(2026, 1, 16)) == Decimal(15) / 31


# --------------------------------------------------------------------------- counting rules (§6), properties

COUNTS = st.integers(min_value=0, max_value=5000)


@settings(max_examples=300, deadline=None)
@given(committed=COUNTS, floor_share=st.integers(0, 100), price=st.integers(1, 100000),
       quantities=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 6000)), max_size=6),
       on_day=st.integers(0, 800))
def test_realised_never_goes_below_the_floor(committed: int, floor_share: int, price: int,
                                             quantities: list[tuple[int, int]], on_day: int) -> None:
    floor = committed * floor_share // 100
    contract = Contract(vendor="V", contract_ref="C", platform=Platform.ZOOM, sku_key="S",
                        unit_price=Money(Decimal(price) / 100), committed_qty=committed, commit_floor=floor,
                        term_start=date(2026, 1, 1), renewal_date=date(2027, 1, 1))
    changes = [QuantityChange("C", date(2026, 1, 1) + timedelta(days=day), quantity, evidence=f"e{index}")
               for index, (day, quantity) in enumerate(quantities)]
    on = date(2026, 1, 1) + timedelta(days=on_day)
    unit = annual_unit_cost(contract).amount
    figure = realised_run_rate(contract, changes, on=on)
    assert committed_as_of(contract, changes, on=on) >= floor
    assert figure.amount <= unit * (committed - floor)
    assert figure.amount == unit * (committed - committed_as_of(contract, changes, on=on))


STATES = st.sampled_from(list(SeatState))
OBSERVATIONS = st.lists(st.tuples(st.integers(0, 40).map(lambda n: f"seat-{n}"), STATES), max_size=120)


@settings(max_examples=300, deadline=None)
@given(observations=OBSERVATIONS, committed=st.integers(0, 60))
def test_a_seat_is_never_counted_twice(observations: list[tuple[str, SeatState]], committed: int) -> None:
    counts = tally_seats(observations, active=[seat for seat, _ in observations])
    seats = {seat for seat, _ in observations}
    assert counts.assigned + counts.reclaimed == len(seats)
    assert counts.active <= counts.assigned
    # every committed seat is at most one of: held, stranded (reclaimed, still paid) or spare
    in_potential = reclaimable(assigned=counts.assigned, required_remaining=counts.required_remaining,
                               unassigned_spare=counts.unassigned_spare(committed))
    assert in_potential + counts.unassigned_but_committed(committed) <= max(committed, counts.assigned)
    assert counts.unassigned_spare(committed) + counts.unassigned_but_committed(committed) == max(
        0, committed - counts.assigned)


@settings(max_examples=300, deadline=None)
@given(observations=OBSERVATIONS.filter(bool), pick=st.integers(0, 10**6), committed=st.integers(0, 60),
       on_day=st.integers(0, 364))
def test_a_released_then_restored_seat_leaves_potential_and_stranded_as_they_were(
        observations: list[tuple[str, SeatState]], pick: int, committed: int, on_day: int) -> None:
    seat = observations[pick % len(observations)][0]
    state = dict(observations)[seat]
    if state is SeatState.RECLAIMED:
        state = SeatState.RECLAIMABLE  # restore to a held seat; the property is about a held one released
        observations = [*observations, (seat, state)]
    contract = Contract(vendor="V", contract_ref="C", platform=Platform.ZOOM, sku_key="S", unit_price=euros(150),
                        committed_qty=max(committed, 1), term_start=date(2026, 3, 1), renewal_date=date(2027, 3, 1))
    on = date(2026, 3, 1) + timedelta(days=on_day)

    def figures(stream: list[tuple[str, SeatState]]) -> tuple[Money, Money]:
        counts = tally_seats(stream)
        return (potential_annual([(counts, contract, contract.committed_qty)], on=on).amount,
                stranded([(counts, contract, contract.committed_qty)], on=on).amount)

    before = figures(observations)
    released = [*observations, (seat, SeatState.RECLAIMED)]
    assert tally_seats(released).reclaimed == tally_seats(observations).reclaimed + 1  # the release is seen
    restored = [*released, (seat, state)]
    assert tally_seats(restored) == tally_seats(observations)  # back to assigned
    assert figures(restored) == before


def test_users_left_count_each_person_once() -> None:
    holdings = [
        ("alice", Platform.ZOOM, False), ("alice", Platform.TEAMS, False),  # two platforms, both released
        ("bob", Platform.ZOOM, False), ("bob", Platform.WEBEX, True),  # still licensed on Webex: not left
        ("carol", Platform.TEAMS, False),
        ("carol", Platform.TEAMS, False),  # seen twice
    ]
    assert count_users_left(holdings) == 2
    assert gov_expected(count_users_left(holdings)).amount == euros(20)


# --------------------------------------------------------------------------- contract validation and calendar

BASE = {"vendor": "Zoom", "contract_ref": "Z-1", "platform": Platform.ZOOM, "sku_key": "Zoom Business",
        "unit_price": euros(150), "committed_qty": 1000, "commit_floor": 600,
        "term_start": date(2026, 3, 1), "renewal_date": date(2027, 3, 1)}


@pytest.mark.parametrize(("changes", "field"), [
    ({"commit_floor": 1200}, "commit_floor"),
    ({"unit_price": euros(-5)}, "unit_price"),
    ({"unit_price": euros(0)}, "unit_price"),
    ({"term_start": date(2027, 6, 1)}, "term_start"),
    ({"term_end": date(2026, 1, 1)}, "term_start"),
    ({"committed_qty": -1, "commit_floor": 0}, "committed_qty"),
    ({"commit_floor": -1}, "commit_floor"),
    ({"notice_days": -3}, "notice_days"),
    ({"billing_period_months": 0}, "billing_period_months"),
    ({"contract_ref": "  "}, "contract_ref"),
    ({"renewal_unit_price": Money(Decimal(160), "USD")}, "renewal_unit_price"),
])
def test_contract_validation_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ContractInvalid) as raised:
        Contract(**{**BASE, **changes})  # type: ignore[arg-type]
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


def test_quantity_change_validation() -> None:
    with pytest.raises(ContractInvalid, match=r"^quantity: "):
        QuantityChange("Z-1", date(2027, 3, 1), -1)
    with pytest.raises(ContractInvalid, match=r"^evidence: "):
        QuantityChange("Z-1", date(2027, 3, 1), 1, evidence=" ")
    with pytest.raises(ContractInvalid, match=r"^contract_ref: "):
        realised_run_rate(ZOOM_BUSINESS, [QuantityChange("OTHER", date(2027, 3, 1), 1)], on=date(2027, 3, 1))


TODAY = date(2026, 12, 4)
NCE_3_DAYS = Contract(vendor="Microsoft (NCE)", contract_ref="MS-3", platform=Platform.TEAMS, sku_key="Teams EEA",
                      unit_price=Money(Decimal("5.30")), billing_period_months=1, committed_qty=100,
                      term_start=TODAY - timedelta(days=3), renewal_date=TODAY - timedelta(days=3) + timedelta(365),
                      cancellation_window_days=7)
NCE_30_DAYS = Contract(vendor="Microsoft (NCE)", contract_ref="MS-30", platform=Platform.TEAMS,
                       sku_key="Teams EEA", unit_price=Money(Decimal("5.30")), billing_period_months=1,
                       committed_qty=100, term_start=TODAY - timedelta(days=30),
                       renewal_date=TODAY - timedelta(days=30) + timedelta(365), cancellation_window_days=7)


def test_nce_window_open_3_days_after_renewal_closed_30_days_after() -> None:
    assert NCE_3_DAYS.cancellation_window_open(TODAY)
    assert NCE_3_DAYS.cancellation_window_closes(TODAY) == TODAY + timedelta(days=4)
    assert not NCE_30_DAYS.cancellation_window_open(TODAY)
    assert not NCE_3_DAYS.cancellation_window_open(TODAY + timedelta(days=4))  # 7 days after: closed
    renewed = Contract(**{**BASE, "renewal_date": TODAY - timedelta(days=3), "term_start": date(2025, 12, 1),
                          "cancellation_window_days": 7})  # type: ignore[arg-type]
    assert renewed.cancellation_window_open(TODAY)  # a renewal date just passed opens it too
    assert not ZOOM_BUSINESS.cancellation_window_open(date(2026, 3, 2))  # no window on a Zoom contract


def test_calendar_sorted_by_next_deadline() -> None:
    calendar = contract_calendar([(ZOOM_BUSINESS, [AMENDMENT]), (NCE_30_DAYS, []), (NCE_3_DAYS, [])], on=TODAY)
    assert [entry.contract.contract_ref for entry in calendar] == ["MS-3", "ZOOM-2026-001", "MS-30"]
    nce_open, zoom, nce_closed = calendar
    assert zoom.notice_deadline == date(2026, 12, 1)  # 2027-03-01 − 90 days: already past
    assert zoom.next_deadline == zoom.next_true_down == date(2027, 3, 1)
    assert zoom.committed_qty == 1000
    assert nce_open.nce_window_open and nce_open.next_deadline == TODAY + timedelta(days=4)
    assert not nce_closed.nce_window_open and nce_closed.next_deadline == NCE_30_DAYS.notice_deadline


# --------------------------------------------------------------------------- forecast

def test_forecast_reaches_december_2027() -> None:
    months = forecast([(ZOOM_BUSINESS, [AMENDMENT])], start=date(2026, 11, 15))
    assert months[0].month == date(2026, 11, 1)
    assert months[-1].month == date(2027, 12, 1)
    assert len(months) == 14
    by_month = {month.month: month for month in months}
    assert by_month[date(2027, 2, 1)].run_rate.amount == euros(0)
    assert by_month[date(2027, 3, 1)].run_rate.amount == euros(60000)
    assert by_month[date(2027, 3, 1)].saved_in_month == euros(5000)
    assert by_month[date(2027, 3, 1)].run_rate.status is FigureStatus.BOOKED


def test_forecast_scenarios_move_plans_not_bookings() -> None:
    planned = QuantityChange("ZOOM-2026-001", date(2027, 3, 1), 600)
    late = forecast([(ZOOM_BUSINESS, [planned])], start=date(2027, 1, 1),
                    scenario=Scenario(reduction_delay_months=12))
    assert all(month.run_rate.amount == euros(0) for month in late)  # the renewal slips past 2027
    on_time = forecast([(ZOOM_BUSINESS, [planned])], start=date(2027, 1, 1))
    assert on_time[2].run_rate == Figure(euros(60000), FigureStatus.ESTIMATED)
    booked_late = forecast([(ZOOM_BUSINESS, [AMENDMENT])], start=date(2027, 1, 1),
                           scenario=Scenario(reduction_delay_months=12, visio_cost_per_user=euros(5)),
                           migrated_users=900)
    assert booked_late[2].run_rate.amount == euros(60000)  # evidence does not move
    assert booked_late[2].net_run_rate == Figure(euros(55500), FigureStatus.ESTIMATED)


def test_snapshot_of_an_unpriced_contract_is_estimated() -> None:
    unpriced = Contract(vendor="Cisco", contract_ref="WEBEX-1", platform=Platform.WEBEX, sku_key="Meeting",
                        unit_price=None, committed_qty=100, term_start=date(2026, 1, 1),
                        renewal_date=date(2027, 1, 1))
    change = QuantityChange("WEBEX-1", date(2026, 7, 1), 40, evidence="avenant 3")
    row = snapshot_row(tenant="culture", contract=unpriced, counts=SeatCounts(assigned=40, reclaimed=60),
                       changes=[change], month=date(2026, 7, 1), users_left=60, migrated_users=60,
                       computed_at=datetime(2026, 7, 2, tzinfo=UTC))
    assert row.annual_unit_cost == euros(10)
    assert row.realised_run_rate == euros(600) and row.realised_in_fy == euros(300)
    assert row.status is FigureStatus.ESTIMATED
    assert row.evidence_refs == ("avenant 3",)
    with pytest.raises(ValueError, match="first day"):
        snapshot_row(tenant="culture", contract=unpriced, counts=SeatCounts(), changes=[], month=date(2026, 7, 2),
                     users_left=0, migrated_users=0, computed_at=datetime(2026, 7, 2, tzinfo=UTC))


@settings(max_examples=200, deadline=None)
@given(cents=st.integers(min_value=0, max_value=10**9),
       weights=st.dictionaries(st.text(min_size=1, max_size=4), st.integers(min_value=0, max_value=10**6),
                               min_size=1, max_size=12))
def test_an_allocation_adds_up_to_the_cent_and_each_part_is_within_a_cent_of_its_share(
        cents: int, weights: dict[str, int]) -> None:
    from core.savings import allocate

    amount = Money(Decimal(cents) / 100, "EUR")
    parts = allocate(amount, weights)
    assert set(parts) == set(weights)
    total_weight = sum(weights.values())
    if total_weight == 0:
        assert all(part.amount == 0 for part in parts.values())
        return
    assert sum(part.amount for part in parts.values()) == amount.amount
    for key, part in parts.items():
        exact = amount.amount * weights[key] / total_weight
        assert abs(part.amount - exact) < Decimal("0.01"), (key, part, exact)
        assert part.amount >= 0 and (weights[key] > 0 or part.amount == 0)
