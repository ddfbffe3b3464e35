"""Rule build_organism: corpus -> tokenizer -> pretrained tiny LM, saved as an HF folder."""

import sys

sys.stderr = open(snakemake.log[0], "w")

from projected_grpo.organism.pretrain import OrganismConfig, build_organism

config = OrganismConfig.from_dict(snakemake.params.organism)
record = build_organism(config, snakemake.output[0])
print(
    f"built organism: {record['parameters']} parameters in {record['build_seconds']:.0f} s", file=sys.stderr
)
