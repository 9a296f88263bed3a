"""Source cleaning: IPython syntax → Python with comments, display/plot/write statements left out, the
backward slice that becomes train(), data paths rewritten to data_dir."""

from __future__ import annotations

import ast

import pytest

from mlship.convert.cells import clean_cell, explicit_choices, fit_site
from mlship.convert.source import drop_reason, notebook_context
from mlship.convert.training import rewrite_paths, training_code


def cells(*sources: str):  # type: ignore[no-untyped-def]
    return [clean_cell(index, source) for index, source in enumerate(sources)]


# --- magics and shell escapes -------------------------------------------------------------------------------


def test_line_magics_and_shell_escapes_become_comments() -> None:
    cell = clean_cell(
        0, "%matplotlib inline\n!pip install xgboost\nimport pandas as pd\n%load_ext autoreload"
    )
    assert cell.python.splitlines() == [
        "# %matplotlib inline",
        "# !pip install xgboost",
        "import pandas as pd",
        "# %load_ext autoreload",
    ]
    assert cell.tree is not None and cell.error is None
    assert "get_ipython" not in cell.python
    assert cell.magics == ["%matplotlib inline", "!pip install xgboost", "%load_ext autoreload"]


def test_time_magics_keep_their_code() -> None:
    line = clean_cell(0, "%time model.fit(X, y)")
    assert line.python == "model.fit(X, y)  # %time"
    timed = clean_cell(1, "%%time\nmodel = f()\nmodel.fit(X, y)")
    assert timed.python.splitlines() == ["# %%time", "model = f()", "model.fit(X, y)"]
    captured = clean_cell(2, "\n%%capture out\nimport numpy as np")
    assert "import numpy as np" in captured.python.splitlines()


def test_other_cell_magics_are_commented_out_entirely() -> None:
    cell = clean_cell(0, "%%bash\nls data\nhead -3 data/x.csv")
    assert all(line.startswith("#") for line in cell.python.splitlines())
    assert cell.tree is not None and cell.tree.body == []


def test_shell_assignment_help_and_indented_magic() -> None:
    cell = clean_cell(0, "files = !ls\ndf?\nfor i in range(3):\n    %time f(i)\n    !echo hi\nx = 5 % 3")
    lines = cell.python.splitlines()
    assert lines[0] == "# files = !ls"
    assert lines[1] == "# df?"
    assert lines[3] == "    f(i)  # %time"
    assert lines[4] == "    pass  # !echo hi"
    assert lines[5] == "x = 5 % 3"
    assert cell.error is None


def test_nbconvert_style_get_ipython_calls_are_commented() -> None:
    cell = clean_cell(0, "get_ipython().run_line_magic('matplotlib', 'inline')\nx = 1")
    assert cell.python.splitlines()[0].startswith("# get_ipython()")


def test_explicit_choices_read_comment_and_tag() -> None:
    notebook = {
        "cells": [
            {"cell_type": "code", "source": "model.fit(X, y)  # mlship: model=model", "metadata": {}},
            {"cell_type": "markdown", "source": "# mlship: model=ignored", "metadata": {}},
            {"cell_type": "code", "source": "rf.fit(X, y)", "metadata": {"tags": ["mlship-model"]}},
        ]
    }

    class Cell(dict):  # type: ignore[type-arg]
        __getattr__ = dict.get

    class Notebook:
        cells = [Cell(cell) for cell in notebook["cells"]]

    named, tagged = explicit_choices(Notebook())
    assert named == [(0, "model")]
    assert tagged == [2]


# --- what is left out ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("df.head()", "display"),
        ("df", "display"),
        ("df.shape", "display"),
        ("'notes about the data'", "display"),
        ("print(accuracy_score(y_test, pred))", "display"),
        ("df.describe()", "display"),
        ("cross_val_score(model, X, y, cv=5)", "display"),
        ("plt.show()", "plot"),
        ("sns.heatmap(df.corr())", "plot"),
        ("df['Age'].hist(bins=30)", "plot"),
        ("fig, ax = plt.subplots()", "plot"),
        ("ConfusionMatrixDisplay.from_estimator(model, X, y)", "plot"),
        ("joblib.dump(model, 'models/m.pkl')", "write"),
        ("df.to_csv('clean.csv')", "write"),
        ("with open('m.pkl', 'wb') as f:\n    pickle.dump(model, f)", "write"),
        ("import seaborn as sns", "plot"),
        ("get_ipython().system('ls')", "ipython"),
        ("df.fillna(0, inplace=True)", None),
        ("df.drop(columns=['a'], inplace=True)", None),
        ("model.fit(X, y)", None),
        ("preprocess(df)", None),
        ("np.random.seed(0)", None),
        ("X = df.drop(columns='y')", None),
        ("with open('notes.txt') as f:\n    notes = f.read()", None),
    ],
)
def test_drop_reason(code: str, reason: str | None) -> None:
    context = notebook_context(cells("import matplotlib.pyplot as plt\nimport seaborn as sns"))
    node = ast.parse(code).body[0]
    assert drop_reason(node, context) == reason


def test_names_bound_by_plots_are_plots_too() -> None:
    context = notebook_context(cells("import matplotlib.pyplot as plt"))
    assert drop_reason(ast.parse("fig, ax = plt.subplots()").body[0], context) == "plot"
    assert drop_reason(ast.parse("ax.set_xlim(0, 1)").body[0], context) == "plot"


# --- the slice ----------------------------------------------------------------------------------------------


NOTEBOOK = (
    "%matplotlib inline\nimport numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "from sklearn.ensemble import RandomForestClassifier",
    "np.random.seed(0)\ndf = pd.read_csv('data/train.csv', index_col=0)\ndf.head()",
    "df['Age'] = df['Age'].fillna(df['Age'].median())\nplt.hist(df['Age'])\nplt.show()",
    "unused = df.describe()\nX = df.drop(columns='y')\ny = df['y']",
    "baseline = LogisticRegression().fit(X, y)\nprint(baseline.score(X, y))",
    "for col in ['a', 'b']:\n    print(col)\n    X[col] = X[col] * 2",
    "rf = RandomForestClassifier(random_state=0)\nrf.fit(X, y)\nrf.score(X, y)\n"
    "import joblib\njoblib.dump(rf, 'm.pkl')",
    "rf.predict(X.head())",
)


def test_training_code_keeps_what_the_model_needs() -> None:
    code = training_code(cells(*NOTEBOOK), fit_cell=6, aliases=["rf"], model_defs=[])
    body = code.body
    assert code.returned == "rf"
    assert "df = pd.read_csv('data/train.csv', index_col=0)" in body
    assert "df['Age'] = df['Age'].fillna(df['Age'].median())" in body
    assert "np.random.seed(0)" in body  # a global effect is kept
    assert "X[col] = X[col] * 2" in body and "print(col)" not in body
    assert "rf.fit(X, y)" in body
    for left_out in ("df.head()", "plt.", "baseline", "unused", "rf.score", "joblib.dump", "predict"):
        assert left_out not in body, left_out
    # pandas and numpy are solution.py's own imports; matplotlib and the baseline's class are not needed
    assert code.imports == ["from sklearn.ensemble import RandomForestClassifier"]
    assert code.magics == ["cell 1: %matplotlib inline"]
    assert code.cells == [1, 2, 3, 5, 6]
    compile("def train():\n" + "\n".join("    " + line for line in body.splitlines()), "t", "exec")


def test_a_later_full_rebinding_drops_the_earlier_one() -> None:
    code = training_code(
        cells(
            "from sklearn.linear_model import LinearRegression",
            "X = first()\ny = target()",
            "X = second()",
            "model = LinearRegression()\nmodel.fit(X, y)",
        ),
        fit_cell=3,
        aliases=["model"],
        model_defs=[],
    )
    assert "second()" in code.body and "first()" not in code.body and "target()" in code.body


def test_the_search_returns_its_best_estimator() -> None:
    code = training_code(
        cells(
            "from sklearn.model_selection import GridSearchCV",
            "grid = GridSearchCV(est, grid_params)\ngrid.fit(X, y)",
        ),
        fit_cell=1,
        aliases=["grid.best_estimator_"],
        model_defs=[],
    )
    assert code.returned == "grid.best_estimator_"


def test_classes_the_model_pickles_go_to_module_level_with_their_constants() -> None:
    code = training_code(
        cells(
            "import numpy as np\nfrom sklearn.base import BaseEstimator, TransformerMixin",
            "COLUMNS = ['a', 'b']\n\nclass Log(BaseEstimator, TransformerMixin):\n"
            "    def fit(self, X, y=None):\n        return self\n"
            "    def transform(self, X):\n        return np.log1p(X[COLUMNS])",
            "pipe = make_pipeline(Log(), Ridge())\npipe.fit(X, y)",
        ),
        fit_cell=2,
        aliases=["pipe"],
        model_defs=["Log"],
    )
    assert code.definitions[0] == "COLUMNS = ['a', 'b']"
    assert code.definitions[1].startswith("class Log(BaseEstimator, TransformerMixin):")
    assert "class Log" not in code.body
    assert code.imports == ["from sklearn.base import BaseEstimator, TransformerMixin"]


def test_fit_site_of_a_loop_over_a_list_of_models() -> None:
    cell = clean_cell(0, "models = [A(), B()]\nfor m in models:\n    m.fit(X, y)\nprint('done')")
    site = fit_site(cell, ["models[0]"])
    assert site.statement == 1
    loop = fit_site(cell, ["m", "models[1]"])
    assert loop.statement == 1 and loop.loop_names == {"m"}


# --- data paths ---------------------------------------------------------------------------------------------


def test_rewrite_paths_points_the_notebook_files_at_data_dir() -> None:
    mapping = {"data/train.csv": "data/train.csv", "data/extra/labels.csv": "data/extra/labels.csv"}
    code = (
        "df = pd.read_csv('data/train.csv', index_col=0)\n"
        "other = pd.read_csv('./data/train.csv')\n"
        "up = pd.read_csv('../data/train.csv')\n"
        "DATA = 'data/'\n"
        "files = glob.glob('data/extra/*.csv')\n"
        "url = pd.read_csv('https://example.com/data/train.csv')\n"
        "name = 'train.csv'\n"
    )
    rewritten, count = rewrite_paths(code, mapping)
    lines = rewritten.splitlines()
    assert lines[0] == 'df = pd.read_csv(str(data_dir / "data/train.csv"), index_col=0)'
    assert lines[1] == 'other = pd.read_csv(str(data_dir / "data/train.csv"))'
    assert lines[2] == 'up = pd.read_csv(str(data_dir / "data/train.csv"))'
    assert lines[3] == 'DATA = str(data_dir / "data") + "/"'
    assert lines[4] == 'files = glob.glob(str(data_dir / "data/extra/*.csv"))'
    assert lines[5] == code.splitlines()[5]
    assert lines[6] == "name = 'train.csv'"
    assert count == 5
