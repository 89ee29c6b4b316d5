"""A campaign: which side is attacked, with which references and targets, then evaluation of the result.

Images are read from disk when needed (only labels and features stay in memory); every model's clean
features are computed once and reused by every setting; only attacked images are passed through the
models again. A setting attacks its images chunk by chunk (``step_attack``): each finished chunk is
stored (in a folder when one is given, so an interrupted setting resumes from its last chunk), and under
torchrun the chunks and the clean feature batches are shared among the processes.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from tqdm.auto import tqdm

from metricattack.data.base import ReIDData
from metricattack.data.images import as_fraction
from metricattack.errors import InputError
from metricattack.evaluation import RetrievalMetrics
from metricattack.evaluation.damage import RankingSummary, match_rank_stats, summarize_ranking
from metricattack.evaluation.pipeline import FlipAverage, Pipeline, with_flip
from metricattack.evaluation.ranking import evaluate_rows
from metricattack.evaluation.rows import DistanceRows
from metricattack.experiment.chunks import chunk_ranges
from metricattack.experiment.options import EvaluationProtocol, Reading
from metricattack.experiment.setting import NamedModel
from metricattack.experiment.side_images import SideImages, load_side
from metricattack.models.deployment import Deployment
from metricattack.models.features import check_finite
from metricattack.models.reid import ReIDModel
from metricattack.system import distributed


class Campaign:
    """Attack a data set's query and/or gallery with source model(s); evaluate on target model(s).

    ``deployment`` says how every model runs (its flip averaging must be the deployed pipeline's, the first of
    ``protocol.pipelines``), ``reading`` how images are read, ``protocol`` how attacks are evaluated. A campaign
    is the ``AttackContext`` the attack kinds of ``experiment.registry`` run in.
    """

    def __init__(
        self,
        data: ReIDData,
        sources: list[NamedModel],
        targets: list[NamedModel],
        deployment: Deployment | None = None,
        reading: Reading | None = None,
        protocol: EvaluationProtocol | None = None,
    ) -> None:
        if not sources or not targets:
            raise InputError("a campaign needs at least one source and one target model")
        self.deployment = deployment or Deployment()
        self.reading = reading or Reading()
        self.protocol = protocol or EvaluationProtocol()
        if self.deployment.flip != self.pipelines[0].flip:
            raise ValueError(f"the deployment's flip averaging ({self.deployment.flip}) must be the deployed pipeline's "
                             f"({self.pipelines[0].name}): the attack goes through it")  # fmt: skip
        self.data = data
        self.sources = [self.deploy(n) for n in sources]
        self.targets = [self.deploy(n) for n in targets]
        self.query = load_side(data.query, self.batch_size, self.reading.image_size, self.reading.workers)
        self.gallery = load_side(data.gallery, self.batch_size, self.reading.image_size, self.reading.workers)
        self._clean: dict[tuple[str, bool], tuple[torch.Tensor, torch.Tensor]] = {}
        self._clean_evaluations: dict[tuple[str, str], tuple[RetrievalMetrics, RankingSummary]] = {}

    # --- the options, by the names the attack kinds read (``AttackContext``) ----------------------
    @property
    def device(self) -> torch.device:
        """The deployment's device."""
        return self.deployment.device

    @property
    def batch_size(self) -> int:
        """Images per model pass."""
        return self.reading.batch_size

    @property
    def chunk_size(self) -> int:
        """Images per stored chunk of a setting and per read of clean images: a whole number of batches."""
        return self.reading.whole_chunk_size

    @property
    def progress(self) -> bool:
        """Whether this process shows progress bars (under torchrun only the first one does)."""
        return self.reading.progress and distributed.is_main()

    @property
    def seed(self) -> int:
        """The seed of every random choice."""
        return self.protocol.seed

    @property
    def quantize_images(self) -> bool:
        """Whether attacked images are kept as 8-bit images."""
        return self.protocol.quantize_images

    @property
    def pipelines(self) -> tuple[Pipeline, ...]:
        """The evaluated pipelines; the first is the deployed one."""
        return self.protocol.pipelines

    @property
    def average_precision(self) -> str:
        """The AP variant ("standard" or "trapezoid")."""
        return self.protocol.average_precision

    @property
    def train(self) -> list:
        """The data set's training split."""
        return self.data.train

    def deploy(self, named: NamedModel) -> NamedModel:
        """The model as this campaign runs it (``Deployment.deploy``; idempotent)."""
        return replace(named, model=self.deployment.deploy(named.model))

    # --- features -------------------------------------------------------------------------
    @torch.no_grad()  # not inference_mode: clean features are references inside the attacks' graphs
    def features(self, model: ReIDModel, images: torch.Tensor) -> torch.Tensor:
        """Features (on the device) of 8-bit or float images, in batches."""
        chunks = []
        for start in range(0, len(images), self.batch_size):
            chunks.append(model(as_fraction(images[start : start + self.batch_size].to(self.device))).float())
        return torch.cat(chunks)

    def side_features(self, model: ReIDModel, side: SideImages, desc: str) -> torch.Tensor:
        """Features (on the device) of a whole side's clean images, read from disk a chunk at a time; under
        torchrun each process embeds its share of the chunks and every process gets them all."""
        ranges = chunk_ranges(len(side), self.chunk_size)

        def embed(number: int) -> torch.Tensor:
            return distributed.portable(self.features(model, side.read(range(*ranges[number]))))

        parts = distributed.share(tqdm(range(len(ranges)), desc=desc, disable=not self.progress, leave=False), embed)
        return torch.cat([parts[number].to(self.device) for number in range(len(ranges))])

    def clean_features(self, named: NamedModel, flip: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(query, gallery) clean features of a model, computed once; ``flip`` overrides the deployed flip averaging."""
        model = named.model if flip is None else with_flip(named.model, flip)
        key = (named.name, isinstance(model, FlipAverage))
        if key not in self._clean:
            self._clean[key] = (
                check_finite(self.side_features(model, self.query, f"features of {named.name} (query)"), named.name, "query images"),
                check_finite(self.side_features(model, self.gallery, f"features of {named.name} (gallery)"), named.name, "gallery images"),
            )
        return self._clean[key]

    def evaluate(
        self, named: NamedModel, query_features: torch.Tensor, gallery_features: torch.Tensor, pipeline: Pipeline | None = None
    ) -> tuple[RetrievalMetrics, DistanceRows]:
        """Metrics and the distances (Q,G) (rows on demand) under the model's own distance, after the query expansion
        and re-ranking of ``pipeline`` (default: the deployed one); the features are already flip-averaged or not."""
        spec = named.model.spec
        distances = (pipeline or self.pipelines[0]).distance_rows(query_features, gallery_features, spec.metric, spec.normalize)
        labels = self.labels(query_features.device)
        return evaluate_rows(distances, len(query_features), len(gallery_features), labels, self.average_precision), distances

    def labels(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        """Query pids, gallery pids, query camids, gallery camids on ``device``."""
        return tuple(t.to(device) for t in (self.query.pids, self.gallery.pids, self.query.camids, self.gallery.camids))

    def clean_metrics(self, named: NamedModel, pipeline: Pipeline | None = None) -> RetrievalMetrics:
        """Metrics of the unattacked retrieval (under the deployed pipeline unless told)."""
        return self.clean_evaluation(named, pipeline)[0]

    def summarize(self, distances: DistanceRows | torch.Tensor) -> RankingSummary:
        """First-match ranks and top-10 lists of the distances (Q,G) under the protocol, a chunk of queries at a time."""
        distances = DistanceRows.of_matrix(distances) if isinstance(distances, torch.Tensor) else distances
        parts = []
        for start, stop, rows in distances.chunks():
            query_pids, gallery_pids, query_camids, gallery_camids = self.labels(rows.device)
            parts.append(summarize_ranking(rows, query_pids[start:stop], gallery_pids, query_camids[start:stop], gallery_camids))
        return RankingSummary(torch.cat([p.first_match_rank for p in parts]), torch.cat([p.top for p in parts]))

    def clean_evaluation(self, named: NamedModel, pipeline: Pipeline | None = None) -> tuple[RetrievalMetrics, RankingSummary]:
        """Clean metrics and ranking summary under a pipeline (default: the deployed one), computed once."""
        pipeline = pipeline or self.pipelines[0]
        key = (named.name, pipeline.name)
        if key not in self._clean_evaluations:
            metrics, distances = self.evaluate(named, *self.clean_features(named, pipeline.flip), pipeline)
            self._clean_evaluations[key] = (metrics, self.summarize(distances))
        return self._clean_evaluations[key]

    def clean_result(self, named: NamedModel, pipeline: Pipeline | None = None) -> dict:
        """The clean row of results.json: metrics, the pipeline and the first true match's mean / median rank."""
        metrics, summary = self.clean_evaluation(named, pipeline)
        return {"pipeline": (pipeline or self.pipelines[0]).name, **metrics.as_dict(), **match_rank_stats(summary)}
