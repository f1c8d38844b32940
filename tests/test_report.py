import pandas as pd

from robustnas.report import markdown_table


def test_markdown_table():
    frame = pd.DataFrame({"proxy": ["snip", "zen"], "rho": [0.123456, 1.0], "n": [3, 4]})
    assert markdown_table(frame) == "| proxy | rho | n |\n|---|---|---|\n| snip | 0.1235 | 3 |\n| zen | 1 | 4 |"
