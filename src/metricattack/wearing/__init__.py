"""The wearable-pattern attack: a texture printed on the top, optimised through the synthetic renderer's
torch compositor over many rendered images of its wearer, then scored on re-rendered, unseen cameras.

Modules: ``setting`` (what to optimise and how, its checks), ``printing`` (printable colours, smoothness,
the matched random pattern), ``wearers`` (the data's renderer settings, wearers and targets, gallery
features), ``renders`` (the wearer's renders, differentiable and numpy), ``objective`` (the metric loss
on rendered features), ``optimise`` (Adam over the texture, expectation over transformation),
``scoring`` (retrieval of the re-rendered wearer), ``results`` (rows, summary, files), ``visuals``
(pattern PNGs, contact sheet, report page), ``run`` (one wearer after another, resumable).
"""
