# projected-grpo: the study as a DAG. Stages live in rules/, logic in src/projected_grpo.
import os

from snakemake.utils import min_version, validate

min_version("9.0")


# A --configfile replaces config.yaml instead of being merged into it, so a study config
# (e.g. .test/config.yaml) runs exactly the arms and folds it lists.
if not workflow.config_settings.configfiles:

    configfile: "config.yaml"


validate(config, "schemas/config.schema.yaml")


# The report's front page: once rule aggregate has written it, the description with the
# verdict and Table 1 (study/front_page.py); before that, the description alone.
FRONT_PAGE = "results/report/front.rst"


report: os.path.abspath(FRONT_PAGE) if os.path.exists(FRONT_PAGE) else "report/workflow.rst"


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
