"""mc.tune: model selection — k-fold cross-validation, hyperparameter search, ensembles.

    folds = mc.tune.kfold(dataset, k=5, stratified=True, seed=0)
    cv = mc.tune.cross_validate(build_model, dataset, k=5, fit_kwargs={"epochs": 3})
    res = mc.tune.random_search(train_fn, {"lr": mc.tune.LogUniform(1e-4, 1e-1)}, n_trials=10,
                                path="search.json")       # resumable
    ens = mc.tune.VotingEnsemble([m1, m2, m3], voting="soft")
"""
from .ensemble import (LogisticRegression, StackingEnsemble, VotingEnsemble, bagging,
                       bootstrap_indices, iterate_batches, log_softmax, softmax)
from .folds import (CVResult, cross_validate, fit_and_evaluate, get_targets, kfold, summarize,
                    train_model)
from .search import (Choice, Distribution, EarlyStopping, IntUniform, LogUniform, SearchResult,
                     Uniform, choice, config_key, grid_configs, grid_search, log_uniform,
                     random_search, run_configs, sample_config, successive_halving,
                     trainer_objective, uniform)

__all__ = [n for n in dir() if not n.startswith("_")]
