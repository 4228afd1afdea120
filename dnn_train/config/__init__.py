"""The config: its schema, its checks before TensorFlow loads, and its errors in one line. Imports no TensorFlow.

Which module holds what (import from the module itself; this package re-exports nothing):
- schema.py: CONF_DIR, TASKS, KERAS_GROUPS, BUILDER_KEYS and the dataclasses Hydra composes against;
- help.py: each group's options and keys, --help's summaries, did-you-mean;
- rules.py: RULES, each checked key's test and its words (learning_rate > 0, ...);
- rule_builders.py: number, choice, int_list, check_value, show: how every rule is made and applied
  (RULES, a dataset's own keys, a model family's keys); imports nothing of dnn_train but errors;
- validate.py: validate(), the composed config refused in one line; check_choices for the command line;
- files.py: source_file, the model file model.init_from names, checked before anything loads it;
- network.py: what a URL key may embed;
- gate.py: the allowlist of callables, checked on every config Hydra composes (install_gate);
- hydra_errors.py: describe_error, Hydra's and OmegaConf's errors as one line;
- make.py: make(), the Keras-class groups instantiated; check_targets, their keys against the classes;
- advice.py: chapter_warnings, combinations warned about.
"""
