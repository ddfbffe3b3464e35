# projected-grpo: the study as a DAG. Stages live in rules/, logic in src/projected_grpo.
from snakemake.utils import min_version, validate

min_version("9.0")


# A --configfile replaces config.yaml instead of being merged into it, so a study config
# (e.g. .test/config.yaml) runs exactly the arms and folds it lists.
if not workflow.config_settings.configfiles:

    configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/environment.smk"
include: "rules/organism.smk"
include: "rules/pool.smk"
include: "rules/vhack.smk"
include: "rules/train.smk"
include: "rules/aggregate.smk"


rule all:
    input:
        all_targets(),
