"""The campaign behind the annotation app: the background round work beside the HTTP routes.

A person replaces the simulated oracle: questions are claimed and answered one at a time through
:class:`rsir.api_campaign.Campaign` (the object a notebook drives too); when a round is fully answered, a
background thread trains the head and selects the next round (:meth:`Campaign.advance`, one transaction), so
HTTP requests never wait for training. While that thread works, answers and undos to the closing round are
refused (409): what the head was trained on is exactly what the store keeps.

One server process per campaign: the guard against a second concurrent ``advance`` is this
process's lock (the database's unique keys reject a duplicate round anyway).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from rsir.api_campaign import AnswerResult, Campaign, Closed, Question, Undone, check_annotator
from rsir.api_campaign import CampaignOptions as ServeOptions  # the command line's options, None = stored
from rsir.api_campaign import open_campaign as _open_campaign

__all__ = ["AnnotationCampaign", "Closed", "ServeOptions", "check_annotator"]

log = logging.getLogger("rsir.app.annotate")

RETRY_AFTER_S = 10.0  # a failed round job is retried no sooner than this


class AnnotationCampaign:
    """One campaign served to people: the API's :class:`Campaign` (who gets which pair, answers, undo,
    invitations, progress) plus the background rounds and the lock that closes a round while it trains."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.store, self.id, self.name = campaign.store, campaign.id, campaign.name  # store: for the tests
        self.root = Path(campaign.root).resolve()
        self.lock = threading.Lock()  # guards "is a round job running" against answers and undos
        self._job: threading.Thread | None = None
        self._job_kind = ""
        self.job_round = 0  # the round a "train" job closes
        self._stopping = False
        self.error: str | None = None
        self._failed_at = 0.0

    # --- opening -----------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        archive,
        db: str | Path,
        name: str,
        options: ServeOptions = ServeOptions(),
        *,
        embeddings=None,
        progress: bool = False,
        claim_seconds: float = 300,
        runtime: str = "auto",
    ) -> AnnotationCampaign:
        """Create or resume campaign ``name`` over ``archive`` through :func:`rsir.open_campaign` (embedded
        with the campaign's encoder, cached; or ``embeddings`` given). Raises CampaignMismatch."""
        from dataclasses import asdict

        given = asdict(options)
        campaign = _open_campaign(
            archive,
            db,
            name,
            **given,
            embeddings=embeddings,
            progress=progress,
            claim_seconds=claim_seconds,
            runtime=runtime,
            created_by="rsir anneal serve",
        )
        return cls(campaign)

    # --- background rounds -------------------------------------------------------------------

    def start(self) -> None:
        """Begin serving: select the first round or finish a round that was complete when stopped."""
        self._stopping = False
        self.kick()

    def stop(self, timeout: float = 0.0) -> None:
        self._stopping = True
        job = self._job
        if job is not None and timeout > 0:
            job.join(timeout)

    @property
    def busy(self) -> bool:
        job = self._job
        return job is not None and job.is_alive()

    @property
    def closing(self) -> bool:
        """The current round is being trained on: its answers are final."""
        return self.busy and self._job_kind == "train"

    def kick(self) -> bool:
        """Start the round job if one is due and none runs; True when a job is (now) running."""
        with self.lock:
            if self.busy:
                return True
            if self._stopping or (self.error and time.monotonic() - self._failed_at < RETRY_AFTER_S):
                return False
            kind = self.campaign.due()
            if not kind:
                return False
            self._job_kind, self.job_round = kind, self.campaign.current_round
            self._job = threading.Thread(target=self._run_job, name=f"anneal-{self.name}", daemon=True)
            self._job.start()
            return True

    def _run_job(self) -> None:
        try:
            c = self.campaign
            c.start()
            while not self._stopping and not c.done and c.round_complete():
                with self.lock:
                    self._job_kind, self.job_round = "train", c.current_round
                record = c.advance()
                log.info("campaign %s: round %s trained on %s answers (map@%s %s)", self.name, record.round,
                         record.n_labelled, c.k, record.map_at_k)  # fmt: skip
            self.error = None
        except Exception as err:  # shown to annotators as a retrying state, details only in the log
            log.exception("campaign %s: preparing the next round failed", self.name)
            self.error = f"preparing the next round failed ({type(err).__name__}); retrying, see the server log"
            self._failed_at = time.monotonic()

    def job_kind(self) -> str:
        """'select' / 'train' while a round job runs (or is due), '' otherwise."""
        if self.busy:
            return self._job_kind
        return self.campaign.due()

    # --- annotators: the API's calls, under the lock that closes a round while it trains ----------

    def next_question(self, annotator: str) -> Question | None:
        """The annotator's pair to answer: their held one, else a newly claimed free one."""
        # no guard needed while a job runs: a complete round has no pending pair, and undo is refused
        return self.campaign.next_question(annotator)

    def answer(self, annotator: str, question_id: int, label: int) -> AnswerResult:
        """Store an answer (:meth:`Campaign.answer`); also raises Closed while the round trains."""
        check_annotator(annotator)
        with self.lock:
            if self.closing:
                raise Closed("this round is closed: the model is training on it")
            result = self.campaign.answer(annotator, question_id, label)
        if result.question.label is not None and self.campaign.round_complete():
            self.kick()
        return result

    def undo(self, annotator: str) -> Undone | None:
        """Take back the annotator's latest answer of the open round (:meth:`Campaign.undo`)."""
        check_annotator(annotator)
        with self.lock:
            if self.closing:
                raise Closed("this round is closed: the model is training on it")
            return self.campaign.undo(annotator)

    def annotator_of(self, token: str) -> str | None:
        """The invited annotator whose personal token this is (None: not one of this campaign's)."""
        return self.campaign.annotator_of(token)

    def image_path(self, idx: int) -> Path:
        """The file of item ``idx`` from the store, resolved inside the archive root (OutsideRoot if not)."""
        from rsir.app.common import safe_path

        return safe_path(self.root, self.campaign.item_path(idx))
