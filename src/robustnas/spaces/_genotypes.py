"""Published genotypes of the DARTS and ARNAS spaces, as data, each with its source.

Every genotype below was copied from the authors' public genotype file named in its comment (pairs
are (op, input) per node, nodes 2..5 in order). The parameter counts in the comments are ours
(``count_parameters``, auxiliary head excluded, CIFAR-10, DARTS: C=36, 20 cells; ARNAS: C=64,
20 cells) and agree with each paper's reported size; tests/test_darts.py and tests/test_arnas.py
check them.
"""
from __future__ import annotations

from robustnas.spaces.arnas import ArnasGenotype
from robustnas.spaces.darts import DartsGenotype

# Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019 (first-order search).
# Source: github.com/quark0/darts cnn/genotypes.py DARTS_V1, identical in the copies checked in
# chenxin061/pdarts genotypes.py @ b1575e1 and yuhuixu1993/PC-DARTS genotypes.py @ 283b086.
# 3,169,414 parameters.
DARTS_V1 = DartsGenotype(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
    reduce_concat=[2, 3, 4, 5],
)  # fmt: skip

# Same paper, second-order search: the "DARTS" of the paper's tables (3.3 M parameters).
# Source: github.com/quark0/darts cnn/genotypes.py DARTS_V2 (DARTS = DARTS_V2 there), same copies.
# 3,349,342 parameters.
DARTS_V2 = DartsGenotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
    reduce_concat=[2, 3, 4, 5],
)  # fmt: skip

# Chen, Xie, Wu & Tian, "Progressive Differentiable Architecture Search", ICCV 2019 (3.4 M).
# Source: github.com/chenxin061/pdarts genotypes.py @ b1575e1, PDARTS. 3,433,798 parameters.
PDARTS = DartsGenotype(
    normal=[("skip_connect", 0), ("dil_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 3), ("sep_conv_3x3", 0), ("dil_conv_5x5", 4)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("avg_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("dil_conv_5x5", 2),
            ("max_pool_3x3", 0), ("dil_conv_3x3", 1), ("dil_conv_3x3", 1), ("dil_conv_5x5", 3)],
    reduce_concat=[2, 3, 4, 5],
)  # fmt: skip

# Xu et al., "PC-DARTS: Partial Channel Connections for Memory-Efficient Architecture Search",
# ICLR 2020, CIFAR-10 search (3.6 M). Source: github.com/yuhuixu1993/PC-DARTS genotypes.py @ 283b086,
# PC_DARTS_cifar. 3,634,678 parameters.
PC_DARTS = DartsGenotype(
    normal=[("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
            ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
    reduce_concat=[2, 3, 4, 5],
)  # fmt: skip

# Chen et al., "DrNAS: Dirichlet Neural Architecture Search", ICLR 2021, CIFAR-10 search (4.1 M).
# Source: github.com/xiangning-chen/DrNAS DARTS-space/genotypes.py @ 68bbcbf, DrNAS_cifar10 (the
# older root genotypes.py has a different DrNAS_cifar of 3.09 M, which does not match the paper).
# 4,099,294 parameters.
DRNAS = DartsGenotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2),
            ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2), ("dil_conv_5x5", 3)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("dil_conv_5x5", 2), ("sep_conv_5x5", 1),
            ("sep_conv_5x5", 1), ("dil_conv_5x5", 3), ("skip_connect", 4), ("sep_conv_5x5", 1)],
    reduce_concat=[2, 3, 4, 5],
)  # fmt: skip

# Mok et al., "AdvRush: Searching for Adversarially Robust Neural Architectures", ICCV 2021.
# Source: github.com/nutellamok/advrush eval/genotypes.py @ e6fcb7b, ADVRUSH (identical in
# advrush/genotypes.py). 4,158,046 parameters (spec crose-and-arnas.md §B.5 measured 4.16 M).
ADVRUSH = DartsGenotype(
    normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_5x5", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 0), ("dil_conv_3x3", 2),
            ("skip_connect", 0), ("avg_pool_3x3", 1), ("skip_connect", 0), ("skip_connect", 2)],
    reduce_concat=[2, 3, 4, 5],
)  # fmt: skip

# Dong, Li, Wang & Xu, "Adversarially Robust Neural Architectures" (RACL), arXiv:2009.00902, 2020.
# Source: the RACL genotype as released by the AdvRush authors for their comparison,
# github.com/nutellamok/advrush eval/genotypes.py @ e6fcb7b, RACL. 3,571,174 parameters.
RACL = DartsGenotype(
    normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_5x5", 0), ("skip_connect", 1),
            ("sep_conv_3x3", 0), ("skip_connect", 3), ("sep_conv_3x3", 3), ("skip_connect", 4)],
    normal_concat=[2, 3, 4, 5],
    reduce=[("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1),
            ("sep_conv_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 2), ("dil_conv_3x3", 3)],
    reduce_concat=[2, 3, 4, 5],
)  # fmt: skip

# "Towards Accurate and Robust Architectures via Neural Architecture Search", CVPR 2024
# (arXiv:2405.05502), CIFAR-10 search. Source: github.com/fyqsama/ARNAS @ 9bcc2e3,
# test_AutoAttack/genotypes.py ARNAS (the genotype of ARNAS_train_eval, spec crose-and-arnas.md §B.4).
# 4,520,394 parameters at C=64, 20 cells (spec §B.5: 4.52 M).
ARNAS = ArnasGenotype(
    accurate=[("skip_connect", 0), ("skip_connect", 1), ("sep_conv_5x5", 0), ("sep_conv_3x3", 1),
              ("sep_conv_5x5", 3), ("sep_conv_3x3", 1), ("sep_conv_5x5", 4), ("skip_connect", 0)],
    accurate_concat=[2, 3, 4, 5],
    reduce=[("avg_pool_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_5x5", 2), ("avg_pool_3x3", 0),
            ("dil_conv_5x5", 3), ("dil_conv_5x5", 2), ("dil_conv_5x5", 4), ("dil_conv_5x5", 3)],
    reduce_concat=[2, 3, 4, 5],
    robust=[("dil_conv_5x5", 0), ("dil_conv_5x5", 1), ("dil_conv_5x5", 1), ("dil_conv_5x5", 2),
            ("dil_conv_3x3", 3), ("dil_conv_5x5", 2), ("dil_conv_3x3", 4), ("dil_conv_3x3", 3)],
    robust_concat=[2, 3, 4, 5],
)  # fmt: skip

# Names accepted by DartsGenotype.parse / ArnasGenotype.parse (case-insensitive, '-' read as '_').
# "DARTS" is DARTS_V2, as in the DARTS code.
DARTS_GENOTYPES: dict[str, DartsGenotype] = {
    "DARTS_V1": DARTS_V1,
    "DARTS_V2": DARTS_V2,
    "DARTS": DARTS_V2,
    "PDARTS": PDARTS,
    "PC_DARTS": PC_DARTS,
    "DRNAS": DRNAS,
    "ADVRUSH": ADVRUSH,
    "RACL": RACL,
}
ARNAS_GENOTYPES: dict[str, ArnasGenotype] = {"ARNAS": ARNAS}
