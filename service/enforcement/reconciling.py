"""Reconcile one user against the policy and return the decision to record.

The worker calls ``Reconciler.reconcile`` with a ``Request`` (the user, the trigger, the attempt) for each
claimed job. It reads the user's current state from GenAuth (so the event that caused the job does not
matter: level-triggered), evaluates the pure policy, works out each matching rule's outcome
(``service.policy.outcomes``: fallbacks, exemptions, unsatisfiable factors), and writes ``set-mfa-status``
only when an enforce-mode rule needs a factor the user lacks and its rollout has reached the user (before
their deadline a rule is ``pending`` and adds nothing, so no write for it reaches the gate; the deadline is
kept per user by ``service.enforcement.deadlines``). A user the policy's ``protected`` block names
(a break-glass account) is decided ``protected`` as soon as their facts are read: their MFA data is not used
and nothing is planned; the write gate refuses them again (``service.enforcement.brakes``). Temporary GenAuth
errors propagate to the worker, which retries; a user who no longer exists, or is archived, is a ``removed``
decision, not an error (a removal event is only a hint: this read is what confirms it).

It reads what it needs in one round trip (``service.enforcement.facts.read_user``): ``get-user`` with the
flags the rules need (or the record a listing returned), ``get-mfa-status`` alongside it whenever any rule
could match (after it, for a trigger that says the user is gone: ``REMOVAL_TRIGGERS``), and groups or roles
when a rule names them; departments come from the record's ``departmentIds`` and the process's cached
organisation tree (``service.enforcement.organisation``), which a job triggered by an event that changes the
tree (``TREE_EVENTS``) marks out of date.

GenAuth has no compare-and-set, so a write goes like this (``_enforce``):

1. the reads take, before they are sent, the rate-limit tokens for the write and its read-back too, so no
   wait falls between the read of the MFA data and the write: the plan is made from data one round trip
   old (when the facts needed a second round, a department new to the cached tree or
   ``get-user-departments``, the MFA data is read again after it);
2. write the merged object;
3. read it back (unless ENFORCER_VERIFY_WRITES is off): the factors written must be there, and nothing the
   service does not own may be gone. What another writer lost is put back once, and the decision says so;
   a write GenAuth did not keep is ``WriteNotKeptError`` (retried, then dead-lettered with that reason).
   A write whose answer was lost is judged by the same read: confirmed, or ``WriteOutcomeUnknownError``.

Whether GenAuth will then challenge the user (``service.enforcement.effective``): the pool's factors and
the settings of the apps rules name come from the process's cache (``MfaLayers``), read before the job's
reads when out of date; for an app with its own settings, ``get-mfa-trigger-data`` is read per user after
the write (one call per such app, sent together). Each decision records the required factors that are not
effective (``Decision.not_effective``), with why and what to switch on.

A change another writer makes in the moment between the read's answer and the write is overwritten, and no
read can tell (the read-back shows what was written); the window is that one round trip, as it was between
the re-read this sequence used to make and the write. A change landing after the write is what step 3 finds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from service import metrics
from service.enforcement.brakes import Brakes, Refusal, refuse_protected, unkeyed_digest
from service.enforcement.deadlines import DeadlineBook
from service.enforcement.decisions import Decision
from service.enforcement.effective import Gap, Layers, MfaLayers, custom_apps, gaps, read_views
from service.enforcement.errors import WriteNotKeptError, WriteOutcomeUnknownError
from service.enforcement.facts import read_user
from service.enforcement.merging import (
    MergeResult,
    check_write,
    enabled_factors,
    merge_factors,
    ordered_factors,
    restoration,
    stored_contact,
    write_changes,
)
from service.enforcement.organisation import OrganisationTree
from service.errors import ServiceError
from service.genauth import users
from service.genauth.client import GenAuthClient, Json
from service.genauth.errors import GenAuthAnswerLostError, GenAuthUserNotFoundError
from service.logs import log_event
from service.policy import (
    Evaluation,
    Outcome,
    Policy,
    Protection,
    RuleResult,
    UserFacts,
    evaluate,
    factors_to_add,
    rule_outcomes,
)
from service.policy.conditions import TREE_EVENTS
from service.policy.outcomes import action_of
from service.store.holds import Hold
from service.vocabulary import INACTIVE_STATUSES, Action

logger = logging.getLogger(__name__)

ARCHIVED = "Archived"
REMOVAL_TRIGGERS = frozenset({"user:archived", "user:deleted"})
"""Events that say the user is gone: ``get-user`` is read first to confirm it, and the MFA data only after, if a
rule matches (a user GenAuth confirms archived or deleted has their MFA data neither read nor written)."""
NOT_FOUND = "the user does not exist in GenAuth (deleted)"


@dataclass(frozen=True)
class Request:
    """One user to reconcile, and what the decision records about why: the trigger and the attempt."""

    userpool_id: str
    user_id: str
    trigger: str
    attempt: int = 0
    enqueued_at: float | None = None
    """When the work was enqueued (wall clock): a tree loaded since then already shows what the event changed."""


class Reconciler:
    """Brings one user in line with the policy; one instance per worker thread (it owns a client)."""

    def __init__(
        self,
        client: GenAuthClient,
        get_policy: Callable[[], Policy],
        *,
        force_audit: bool,
        verify_writes: bool = True,
        tree: OrganisationTree | None = None,
        layers: MfaLayers | None = None,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
        brakes: Brakes | None = None,
        deadlines: DeadlineBook | None = None,
    ) -> None:
        self.client = client
        self.brakes = brakes
        """The write gate (pause, change budget: ``service.enforcement.brakes``); None lets every write go."""
        self.tree = tree or OrganisationTree()
        """The organisation tree department facts come from (the process's, shared by its workers)."""
        self.layers = layers or MfaLayers()
        """The pool's and apps' MFA settings (the process's, shared by its workers)."""
        self.get_policy = get_policy
        self.force_audit = force_audit
        self.verify_writes = verify_writes
        """Read every write back (ENFORCER_VERIFY_WRITES): one more ``get-mfa-status`` per write."""
        self._apps: frozenset[str] | None = None
        """The applications of the rules of the last plan with rules (None: none yet), for ``keep_fresh``."""
        self.today = today
        """Today's date (UTC) for exception expiry and rollouts; tests pass a fixed one."""
        self.contact_digest = brakes.contact_digest if brakes is not None else unkeyed_digest
        """The digest a write's recorded ``changes`` keep of a contact it filled (``Brakes.contact_digest``)."""
        self.deadlines = deadlines
        """Where rollout sightings are kept (``service.enforcement.deadlines``); None: every user counts as first
        seen today and nothing is kept."""

    def plan(
        self,
        user_id: str,
        *,
        dry_run: bool = False,
        user: Json | None = None,
        removal: bool = False,
        userpool_id: str | None = None,
    ) -> Plan:
        """Everything reconciling the user would read and decide, without writing to GenAuth. ``user``: the
        record as a listing returned it (read with ``facts.user_flags``), so ``get-user`` is not read again.
        ``removal``: the trigger says the user is gone, so the MFA data waits for ``get-user`` to deny it.
        ``userpool_id``: the job's pool, so the user's rollout sightings and deadlines are recorded
        (``service.store.deadlines``); None (explain, dry runs) reads them only."""
        policy = self.get_policy()
        is_audit = self.force_audit or dry_run
        with_mfa = user is None and not removal and bool(policy.rules)  # any rule could match: read it alongside
        writes = 0 if is_audit else 2 if self.verify_writes else 1
        layers = None
        if policy.rules:
            self._apps = policy.apps
            layers = self.layers.current(self.client, policy.apps)
        reading = read_user(
            self.client,
            user_id,
            policy,
            user=user,
            tree=self.tree,
            with_mfa=with_mfa,
            reserve=writes if with_mfa else 0,
        )
        facts = reading.facts
        today = self.today()
        evaluation = evaluate(policy, facts, force_audit=self.force_audit, today=today)
        evaluation = self._scheduled(policy, evaluation, facts, today, None if dry_run else userpool_id)
        if facts.status == ARCHIVED:
            return Plan(facts, evaluation, (), is_audit, removal="archived", policy_digest=policy.digest)
        matched = tuple(result for result in evaluation.results if result.matched)
        if evaluation.protected is not None:  # a break-glass account: nothing to plan, whatever the rules say
            return Plan(
                facts,
                evaluation,
                matched,
                is_audit,
                outcomes=rule_outcomes(evaluation, facts, ()),  # ``protected`` under every rule that matches
                protected=f"{evaluation.protected}: nothing planned or written",
                policy_digest=policy.digest,
            )
        base = Plan(
            facts,
            evaluation,
            matched,
            is_audit,
            layers=layers,
            policy_digest=policy.digest,
            protection=policy.protected,
        )
        if not matched:
            return base
        if reading.mfa is not None:
            return base.with_mfa(reading.mfa.result())
        self.client.reserve_calls(1 + writes)  # the read and what follows it, so no wait falls between them
        return base.with_mfa(users.get_mfa_status(self.client, user_id))

    def _scheduled(
        self, policy: Policy, evaluation: Evaluation, facts: UserFacts, today: date, userpool_id: str | None
    ) -> Evaluation:
        """The evaluation again with the user's stored rollout sightings (grace counts from the first), which
        an enforcing run records first; then the deadlines found are noted, so the worker can bring the user
        back on the day (``service.store.deadlines``). Without a ``DeadlineBook``: as evaluated."""
        graces = {
            result.rule: rollout.grace
            for result in evaluation.results
            if result.schedule is not None and (rollout := policy.rule(result.rule).rollout) is not None
        }
        if self.deadlines is None or not graces:
            return evaluation
        sightings = self.deadlines.sightings(userpool_id, facts.user_id, graces, today=today)
        if sightings:
            evaluation = evaluate(policy, facts, force_audit=self.force_audit, today=today, sightings=sightings)
        if userpool_id is not None:
            self.deadlines.note(userpool_id, evaluation)
        return evaluation

    def reconcile(self, request: Request, *, dry_run: bool = False, user: Json | None = None) -> Decision:
        is_audit = self.force_audit or dry_run
        if request.trigger in TREE_EVENTS:  # not membership events: their users' departmentIds are read anew
            self.tree.invalidate(as_of=request.enqueued_at)
        try:
            plan = self.plan(
                request.user_id,
                dry_run=dry_run,
                user=user,
                removal=request.trigger in REMOVAL_TRIGGERS,
                userpool_id=request.userpool_id,
            )
            if plan.merged is not None and plan.merged.is_changed:
                refused = self._gate(request, plan)
                if refused is None:
                    plan = self._enforce(request, plan)
                elif refused.action == Action.PROTECTED:
                    plan = replace(plan, protected=refused.reason)
                else:
                    plan = replace(plan, held=refused.reason)
            plan = self.assess(plan)
        except GenAuthUserNotFoundError:
            return decision_of(None, request, is_audit=is_audit)
        return decision_of(plan, request, is_audit=is_audit)

    def keep_fresh(self) -> None:
        """Read the MFA settings again if they are out of date, between jobs (the worker's loop calls it), so a
        factor switched on clears the warning of users nobody touches (``MfaLayers.on_change``); GenAuth
        failing here is left to the next job, which retries its own way. It uses the applications of the rules
        the last job ran under (not the policy source, whose file it would make this thread re-read)."""
        apps = self._apps
        if apps is None:  # no job with rules yet: the first one reads the settings
            return
        try:
            self.layers.current(self.client, apps)
        except ServiceError as error:
            log_event(logger, "mfa_settings_unread", level=logging.WARNING, error_type=type(error).__name__)

    def assess(self, plan: Plan) -> Plan:
        """The plan with the required factors GenAuth will not challenge (``Plan.gaps``): for apps with their
        own settings, the user's view in each is read now, after any write."""
        if (
            plan.layers is None
            or plan.merged is None
            or not plan.matched
            or plan.protected
            or plan.facts.status in INACTIVE_STATUSES
        ):
            return plan  # an inactive account cannot sign in: the report counts it apart
        apps = custom_apps(plan.matched, plan.layers)
        views = read_views(self.client, plan.facts.user_id, apps)
        if plan.write is not None:
            enabled, viewed = plan.write.after, plan.write.after
        else:  # nothing written (explain: not yet): as enforcement would leave them; the views show what is stored
            enabled, viewed = plan.merged.after, plan.merged.before
        found = gaps(plan.matched, plan.outcomes, plan.layers, enabled=enabled, app_views=views, viewed=viewed)
        return replace(plan, gaps=found)

    def _gate(self, request: Request, plan: Plan) -> Refusal | None:
        """Why the write gate lets this write not go (None: it goes): the user is protected, or the brakes hold
        it (the planned change is kept with the hold). Without brakes, protection is still refused."""
        if self.brakes is None:
            return refuse_protected(plan.protection, plan.facts)
        assert plan.merged is not None
        decision = decision_of(plan, request, is_audit=False)
        return self.brakes.admit(
            Hold(
                userpool_id=request.userpool_id,
                user_id=request.user_id,
                cause="",
                reason="",
                trigger=request.trigger,
                rules=decision.rules,
                before=plan.merged.before,
                add=plan.merged.added,
                outcomes=decision.outcomes,
                username=decision.username,
            ),
            plan.facts,
            plan.protection,
        )

    def _enforce(self, request: Request, plan: Plan) -> Plan:
        """Write, read back (see the module docstring); returns the plan as finally carried out."""
        user_id = request.user_id
        self.client.reserve_calls(2 if self.verify_writes else 1)  # taken with the reads: no wait here
        assert plan.merged is not None and plan.current is not None
        merged = plan.merged
        try:
            users.set_mfa_status(self.client, user_id, merged.trigger_data)
        except GenAuthAnswerLostError as error:
            if not self.verify_writes:
                raise self._unknown(request, plan, str(error)) from error
            return self._verify(request, plan, merged, answer_lost=str(error))
        log_event(logger, "mfa_enforced", user_id=user_id, factors=list(merged.added))
        if not self.verify_writes:
            return replace(plan, write=Write(after=merged.after, verified=False, changes=self._changes(plan)))
        return self._verify(request, plan, merged)

    def _verify(self, request: Request, plan: Plan, merged: MergeResult, *, answer_lost: str | None = None) -> Plan:
        assert plan.current is not None
        user_id = request.user_id
        verified = users.get_mfa_status(self.client, user_id)
        check = check_write(plan.current, merged.trigger_data, verified)
        if check.is_kept:
            metrics.WRITE_CHECKS.labels(result="kept").inc()
            if answer_lost:
                log_event(logger, "mfa_enforced", user_id=user_id, factors=list(merged.added), answer_lost=True)
            written = Write(after=enabled_factors(verified), answer_lost=bool(answer_lost), changes=self._changes(plan))
            return replace(plan, write=written)
        if answer_lost:
            metrics.WRITE_CHECKS.labels(result="unknown").inc()
            raise self._unknown(request, plan, answer_lost)
        if not check.lost:
            metrics.WRITE_CHECKS.labels(result="not_kept").inc()
            raise WriteNotKeptError(
                f"GenAuth did not keep the change: {', '.join(check.missing)} missing when read back after "
                "set-mfa-status answered success"
            )
        # Another writer's change landed on ours and lost something the service does not own (or ours):
        # put it back from what was read, on top of what GenAuth holds now, once.
        log_event(logger, "mfa_loss_detected", level=logging.WARNING, user_id=user_id, lost=list(check.lost))
        restored = merge_factors(restoration(plan.current, verified, check.lost), merged.added, plan.facts)
        self.client.reserve_calls(2)
        users.set_mfa_status(self.client, user_id, restored.trigger_data)
        again = users.get_mfa_status(self.client, user_id)
        recheck = check_write(verified, restored.trigger_data, again)
        if not recheck.is_kept:
            metrics.WRITE_CHECKS.labels(result="not_kept").inc()
            raise WriteNotKeptError(
                f"GenAuth did not keep the change: {', '.join(recheck.missing + recheck.lost)} missing after "
                f"restoring {', '.join(check.lost)}"
            )
        metrics.WRITE_CHECKS.labels(result="restored").inc()
        log_event(logger, "mfa_restored", level=logging.WARNING, user_id=user_id, restored=list(check.lost))
        written = Write(after=enabled_factors(again), restored=check.lost, changes=self._changes(plan))
        return replace(plan, write=written)

    def _changes(self, plan: Plan) -> dict[str, Any]:
        """What the plan's write changed, as the decision records it for ``revert`` (``merging.write_changes``):
        the merge over what was read, whatever else a restoration put back for another writer."""
        assert plan.current is not None and plan.merged is not None
        return write_changes(plan.current, plan.merged.trigger_data, self.contact_digest)

    def _unknown(self, request: Request, plan: Plan, why: str) -> WriteOutcomeUnknownError:
        decision = replace(
            decision_of(plan, request, is_audit=False),
            action="unknown",
            after=None,
            reason=f"write outcome unknown: {why}; the next read confirms whether "
            f"{', '.join(plan.merged.added if plan.merged else ())} was enabled",
        )
        return WriteOutcomeUnknownError(decision.reason, decision=decision)


@dataclass(frozen=True)
class Write:
    """What a write did, as read back."""

    after: tuple[str, ...]
    """Factors enabled after it (read back, or as written when writes are not verified)."""
    verified: bool = True
    answer_lost: bool = False
    """GenAuth's answer never came; the read after it showed the change applied."""
    restored: tuple[str, ...] = ()
    """What another writer lost and the service put back (factors, fields)."""
    changes: dict[str, Any] | None = None
    """Exactly what the write changed (``merging.write_changes``): what ``revert`` may undo."""


@dataclass(frozen=True)
class Plan:
    """What the policy says about one user and what enforcing it would change (read, not yet written)."""

    facts: UserFacts
    evaluation: Evaluation
    matched: tuple[RuleResult, ...]
    is_audit: bool
    current: dict[str, Any] | None = None
    """The MFA trigger data read from GenAuth (None when no rule matched: not used, if read at all)."""
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    to_audit: tuple[str, ...] = ()
    merged: MergeResult | None = None
    """The object ``set-mfa-status`` would receive; ``merged.added`` are the factors it enables."""
    removal: str | None = None
    """Why the user counts as removed (``archived``); their MFA data is not used."""
    write: Write | None = None
    """Set once the write was made."""
    layers: Layers | None = None
    """The pool's and apps' MFA settings this plan is judged against (None: no rules)."""
    gaps: tuple[Gap, ...] = ()
    """Required factors GenAuth will not challenge (``Reconciler.assess``)."""
    held: str | None = None
    """Why the write was held instead (``service.enforcement.brakes``): nothing was written."""
    policy_digest: str | None = None
    """The digest of the policy this plan was made under (``Policy.digest``)."""
    protection: Protection | None = None
    """The policy's ``protected`` block this plan was made under: the write gate decides it again."""
    protected: str | None = None
    """Why the user is protected (a break-glass account): nothing was planned, or the gate refused the write."""

    def with_mfa(self, current: dict[str, Any]) -> Plan:
        """This plan completed (or re-made) from the user's MFA data as read."""
        before = enabled_factors(current)
        outcomes = rule_outcomes(
            self.evaluation,
            self.facts,
            before,
            mfa_phone=stored_contact(current, "mfaPhone"),
            mfa_email=stored_contact(current, "mfaEmail"),
            mfa_phone_country_code=stored_contact(current, "mfaPhoneCountryCode"),
        )
        to_enforce = () if self.is_audit else factors_to_add(outcomes.values(), "enforce")
        wanted = {*factors_to_add(outcomes.values(), "audit"), *factors_to_add(outcomes.values(), "enforce")}
        merged = merge_factors(current, to_enforce, self.facts)  # UnmergeableMfaDataError: nothing is written
        return replace(
            self,
            current=current,
            outcomes=outcomes,
            to_audit=tuple(factor for factor in ordered_factors(wanted) if factor not in to_enforce),
            merged=merged,
        )


def decision_of(plan: Plan | None, request: Request, *, is_audit: bool) -> Decision:
    """The decision record for a plan (None: the user no longer exists)."""

    def decide(action: str, reason: str, **values: Any) -> Decision:
        return Decision(
            userpool_id=request.userpool_id,
            user_id=request.user_id,
            trigger=request.trigger,
            mode="audit" if is_audit else "enforce",
            attempt=request.attempt,
            action=action,
            reason=reason,
            rules=values.get("rules", ()),
            required=values.get("required", ()),
            before=values.get("before"),
            after=values.get("after"),
            outcomes=values.get("outcomes", {}),
            not_effective=values.get("not_effective", ()),
            policy_digest=plan.policy_digest if plan is not None else None,
            changes=values.get("changes"),
            **_who(plan),
        )

    if plan is None:
        return decide(Action.REMOVED, f"removed: {NOT_FOUND}")
    if plan.removal is not None:
        return decide(Action.REMOVED, f"removed: the user is {plan.removal} in GenAuth")
    if plan.protected is not None:  # counted as protected under every rule they match
        before = plan.merged.before if plan.merged is not None else None
        return decide(
            Action.PROTECTED,
            plan.protected,
            rules=tuple(result.rule for result in plan.matched),
            before=before,
            after=before,
            outcomes={result.rule: str(Action.PROTECTED) for result in plan.matched},
        )
    if not plan.matched or plan.merged is None:
        return decide(Action.NONE, "no rule matches this user; MFA not checked")
    matched, outcomes, merged, write = plan.matched, plan.outcomes, plan.merged, plan.write
    reason = _reason(
        matched_outcomes=[outcomes[result.rule] for result in matched],
        reasons={result.rule: result.reasons for result in matched},
        wrote=merged.added if write is not None else (),
        would=plan.to_audit,
        write=write,
        gaps=plan.gaps,
    )
    return decide(
        Action.HELD if plan.held else action_of(outcomes.values(), wrote=write is not None, would=bool(plan.to_audit)),
        f"{reason} {plan.held}: would enable {', '.join(merged.added)}." if plan.held else reason,
        rules=tuple(result.rule for result in matched),
        required=ordered_factors({f for result in matched if not result.exempt for f in result.require_mfa}),
        before=merged.before,
        after=write.after if write is not None else merged.before if plan.held else merged.after,
        outcomes={result.rule: outcomes[result.rule].label for result in matched},
        not_effective=tuple(gap.as_json() for gap in plan.gaps),
        changes=write.changes if write is not None else None,
    )


def _who(plan: Plan | None) -> dict[str, str | None]:
    """The user as an admin knows them, recorded with the decision (never the phone number)."""
    if plan is None:
        return {}
    facts = plan.facts
    return {
        "username": facts.username[:128] if facts.username else None,
        "email": facts.email[:320] if facts.email else None,
        "status": facts.status[:32] if facts.status else None,
    }


def _reason(
    *,
    matched_outcomes: list[Outcome],
    reasons: dict[str, tuple[str, ...]],
    wrote: tuple[str, ...],
    would: tuple[str, ...],
    write: Write | None,
    gaps: tuple[Gap, ...] = (),
) -> str:
    """One sentence per matching rule (why it matched, its outcome), then what was done."""
    parts = []
    for outcome in matched_outcomes:
        why = ", ".join(reasons.get(outcome.rule, ())) or "matched"
        details = "; ".join(outcome.details)
        parts.append(f"{outcome.rule} ({why}): {outcome.label}" + (f" — {details}" if details else ""))
    if wrote:
        parts.append(f"enabled {', '.join(wrote)}")
    if write is not None and write.answer_lost:
        parts.append("GenAuth's answer to the write was lost; the read after it confirms the change")
    if write is not None and write.restored:
        parts.append(f"restored {', '.join(write.restored)}, lost to another change made at the same time")
    if write is not None and not write.verified:
        parts.append("not read back (ENFORCER_VERIFY_WRITES is off)")
    if would:
        parts.append(f"would enable {', '.join(would)} (audit)")
    if not wrote and not would and all(o.kind in ("compliant", "exempt") for o in matched_outcomes):
        parts.append("already compliant" if any(o.kind == "compliant" for o in matched_outcomes) else "exempt")
    parts.extend(f"not effective: {gap.why} (to fix: {gap.fix})" for gap in gaps)
    return ". ".join(parts) + "."
