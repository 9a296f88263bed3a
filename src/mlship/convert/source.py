"""The notebook's code → `train(data_dir)` in solution.py: the statements the chosen model depends on, in
notebook order, without display-only expressions, plots and file writes.

How: every cell is cleaned (`cells.clean_cell`), each top-level statement is pruned of display, plotting and
writing leaves (`df.head()`, `plt.show()`, `sns.heatmap(…)`, `print(…)`, `joblib.dump(…)`), then a backward
slice from the statement that fits the model keeps what it needs: the statements binding or mutating a name
it reads (`df = pd.read_csv(…)`, `df['Age'].fillna(…, inplace=True)`, `X_train, X_test, … = …`), transitively,
plus global effects such as `np.random.seed(0)`. Imports go to the top of the file; classes and functions
the saved model refers to go to module level (the service unpickles them from `solution`).
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass, field

from mlship.convert.cells import Cell, root_name, target_names

PLOT_MODULES = (
    "matplotlib",
    "seaborn",
    "plotly",
    "bokeh",
    "altair",
    "pylab",
    "missingno",
    "yellowbrick",
    "scikitplot",
    "graphviz",
    "pydotplus",
    "wordcloud",
    "folium",
    "IPython",
    "ipywidgets",
    "pandas.plotting",
    "dtreeviz",
    "plotnine",
    "hvplot",
    "holoviews",
    "cufflinks",
    "pandas_profiling",
    "ydata_profiling",
    "sweetviz",
    "tqdm",
)
PLOT_CALLS = frozenset(
    {
        "plot", "hist", "boxplot", "scatter", "barh", "pie", "imshow", "show", "savefig", "heatmap",
        "pairplot", "kdeplot", "plot_tree", "plot_importance", "export_graphviz", "scatter_matrix",
        "plot_confusion_matrix", "plot_roc_curve", "plot_precision_recall_curve", "from_estimator",
        "from_predictions", "display", "HTML", "Markdown", "Image", "figure", "subplots", "subplot",
        "tight_layout", "legend", "xlabel", "ylabel", "title", "suptitle", "set_title", "set_xlabel",
        "set_ylabel", "grid", "xticks", "yticks", "colorbar", "countplot", "barplot", "distplot",
        "histplot", "lineplot", "scatterplot", "violinplot", "catplot", "jointplot", "lmplot", "regplot",
        "displot", "FacetGrid", "PairGrid", "plot_partial_dependence", "ProfileReport",
    }
)  # fmt: skip
DISPLAY_CALLS = frozenset(
    {
        "print", "pprint", "display", "head", "tail", "describe", "info", "sample", "value_counts", "unique",
        "nunique", "isnull", "isna", "notnull", "notna", "sum", "mean", "median", "std", "var", "min", "max",
        "count", "corr", "cov", "memory_usage", "nlargest", "nsmallest", "to_string", "to_markdown",
        "get_params", "score", "predict", "predict_proba", "decision_function", "transform", "summary",
        "groupby", "agg", "aggregate", "pivot_table", "crosstab", "query", "sort_values", "sort_index",
        "drop", "copy", "round", "astype", "apply", "keys", "values", "items", "tolist", "any", "all",
        "duplicated", "drop_duplicates", "fillna", "dropna", "replace", "rename", "reset_index",
        "set_index", "merge", "join", "concat", "map", "cumsum", "diff", "shift", "quantile", "mode",
        "idxmax", "idxmin", "abs", "clip", "melt", "pivot", "stack", "unstack", "transpose", "corrwith",
        "len", "type", "sorted", "list", "dict", "set", "tuple", "str", "repr", "isinstance", "dir", "vars",
        "cross_val_score", "cross_validate", "cross_val_predict", "learning_curve", "validation_curve",
        "accuracy_score", "f1_score", "precision_score", "recall_score", "roc_auc_score", "r2_score",
        "mean_squared_error", "mean_absolute_error", "classification_report", "confusion_matrix",
        "log_loss", "balanced_accuracy_score", "mean_absolute_percentage_error", "root_mean_squared_error",
        "explained_variance_score", "matthews_corrcoef", "cohen_kappa_score", "precision_recall_curve",
        "roc_curve", "auc", "average_precision_score", "permutation_importance", "get_feature_names_out",
        "to_numpy", "to_dict", "to_list", "between", "isin", "where", "mask", "select_dtypes", "filter",
        "style", "shape", "size", "ndim", "dtypes", "columns", "index",
    }
)  # fmt: skip
WRITE_CALLS = frozenset(
    {
        "to_csv", "to_excel", "to_parquet", "to_pickle", "to_json", "to_sql", "to_feather", "to_hdf",
        "to_stata", "to_latex", "to_html", "savefig", "dump", "save", "savez", "savez_compressed", "savetxt",
        "save_model", "write", "writelines", "makedirs", "mkdir", "remove", "unlink", "rmtree", "copyfile",
        "copy2", "move", "write_text", "write_bytes", "touch", "to_file", "export_graphviz",
    }
)  # fmt: skip
EFFECT_CALLS = frozenset(
    {"seed", "set_seed", "manual_seed", "filterwarnings", "simplefilter", "set_config", "set_option"}
)
RESERVED = frozenset({"json", "sys", "Path", "Any", "joblib", "np", "pd"})


@dataclass
class Statement:
    """A top-level statement of a cell, pruned of display/plot/write leaves, with what it binds and reads."""

    cell: Cell
    position: int
    node: ast.stmt
    pruned: ast.stmt | None
    removed: list[ast.stmt] = field(default_factory=list)
    emptied: list[ast.stmt] = field(default_factory=list)  # first statement of each body left empty
    binds: set[str] = field(default_factory=set)
    reads: set[str] = field(default_factory=set)
    kills: set[str] = field(default_factory=set)
    effect: bool = False


@dataclass
class Context:
    """What the whole notebook imports: modules by alias, and which aliases are plotting libraries."""

    modules: dict[str, str] = field(default_factory=dict)
    plotting: set[str] = field(default_factory=set)
    plot_names: set[str] = field(default_factory=set)


def _imported(node: ast.Import | ast.ImportFrom) -> dict[str, str]:
    names: dict[str, str] = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            names[alias.asname or alias.name.split(".")[0]] = (
                alias.name if alias.asname else alias.name.split(".")[0]
            )
    else:
        module = node.module or ""
        for alias in node.names:
            if alias.name != "*":
                names[alias.asname or alias.name] = f"{module}.{alias.name}"
    return names


def notebook_context(cells: list[Cell]) -> Context:
    """Every name the notebook imports (anywhere), and the plotting ones among them."""
    context = Context()
    for cell in cells:
        if cell.tree is None:
            continue
        for node in ast.walk(cell.tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name, module in _imported(node).items():
                    context.modules[name] = module
                    if module.startswith(PLOT_MODULES) or name in PLOT_CALLS:
                        context.plotting.add(name)
    return context


# --- leaves -------------------------------------------------------------------------------------------------


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _loads(node: ast.AST) -> set[str]:
    return {
        inner.id
        for inner in ast.walk(node)
        if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Load)
    }


def _is_plot(node: ast.AST, context: Context) -> bool:
    for inner in ast.walk(node):
        if isinstance(inner, ast.Call):
            name = _call_name(inner)
            if name in PLOT_CALLS or name.endswith("Display"):
                return True
            if root_name(inner.func) in context.plotting:
                return True
        if isinstance(inner, ast.Name) and (inner.id in context.plotting or inner.id in context.plot_names):
            return True
    return False


def _is_write(node: ast.stmt) -> bool:
    if isinstance(node, (ast.With, ast.AsyncWith)):
        for item in node.items:
            call = item.context_expr
            if isinstance(call, ast.Call) and _call_name(call) == "open":
                mode = call.args[1] if len(call.args) > 1 else None
                mode = mode or next((k.value for k in call.keywords if k.arg == "mode"), None)
                if (
                    isinstance(mode, ast.Constant)
                    and isinstance(mode.value, str)
                    and set(mode.value) & set("wax")
                ):
                    return True
        return False
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return _call_name(node.value) in WRITE_CALLS
    return False


def _inplace(call: ast.Call) -> bool:
    return any(
        keyword.arg == "inplace" and isinstance(keyword.value, ast.Constant) and keyword.value.value is True
        for keyword in call.keywords
    )


def drop_reason(node: ast.stmt, context: Context) -> str | None:
    """Why a leaf statement is left out of train(): display, plot, write, ipython — or None to keep it."""
    if any(isinstance(inner, ast.Name) and inner.id == "get_ipython" for inner in ast.walk(node)):
        return "ipython"
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        names = _imported(node)
        if names and all(name in context.plotting for name in names):
            return "plot"
        return None
    if _is_write(node):
        return "write"
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return None
    if _is_plot(node, context):
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                context.plot_names |= target_names(target)
        return "plot"
    if isinstance(node, ast.Expr):
        value = node.value
        if not any(
            isinstance(inner, (ast.Call, ast.Await, ast.Yield, ast.NamedExpr)) for inner in ast.walk(value)
        ):
            return "display"
        if isinstance(value, ast.Call) and _call_name(value) in DISPLAY_CALLS and not _inplace(value):
            return "display"
    return None


# --- pruning ------------------------------------------------------------------------------------------------

_BODIES = ("body", "orelse", "finalbody")


def _prune(
    node: ast.stmt, context: Context, removed: list[ast.stmt], emptied: list[ast.stmt]
) -> ast.stmt | None:
    """A copy of `node` without its display/plot/write leaves (None when nothing is left)."""
    compound = isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith, ast.Try))
    if not compound:
        if drop_reason(node, context) is not None:
            removed.append(node)
            return None
        return node
    if isinstance(node, (ast.With, ast.AsyncWith)) and (
        _is_write(node)
        or _is_plot(
            ast.Module(body=[ast.Expr(item.context_expr) for item in node.items], type_ignores=[]), context
        )
    ):
        removed.append(node)
        return None
    clone = copy.copy(node)
    kept_any = False
    for attribute in _BODIES:
        body = getattr(node, attribute, None)
        if not body:
            continue
        kept = [
            inner
            for inner in (_prune(child, context, removed, emptied) for child in body)
            if inner is not None
        ]
        if not kept and attribute == "body":
            emptied.append(body[0])
            kept = [ast.Pass()]
        elif kept and any(not isinstance(inner, ast.Pass) for inner in kept):
            kept_any = True
        setattr(clone, attribute, kept)
    if isinstance(node, ast.Try):
        handlers = []
        for handler in node.handlers:
            inner_clone = copy.copy(handler)
            kept = [
                inner
                for inner in (_prune(child, context, removed, emptied) for child in handler.body)
                if inner
            ]
            if not kept:
                emptied.append(handler.body[0])
                kept = [ast.Pass()]
            inner_clone.body = kept
            handlers.append(inner_clone)
        setattr(clone, "handlers", handlers)  # noqa: B010 - clone is typed as a plain statement
    if not kept_any:
        removed.append(node)
        return None
    return clone


def _binds(node: ast.stmt, imported: dict[str, str]) -> set[str]:
    """Root names a statement binds or mutates."""
    names: set[str] = set()
    for inner in ast.walk(node):
        if isinstance(inner, ast.Assign):
            for target in inner.targets:
                names |= target_names(target)
        elif isinstance(inner, (ast.AnnAssign, ast.AugAssign)):
            names |= target_names(inner.target)
        elif isinstance(inner, ast.NamedExpr):
            names.add(inner.target.id)
        elif isinstance(inner, (ast.For, ast.AsyncFor)):
            names |= target_names(inner.target)
        elif isinstance(inner, (ast.With, ast.AsyncWith)):
            for item in inner.items:
                if item.optional_vars is not None:
                    names |= target_names(item.optional_vars)
        elif isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(inner.name)
        elif isinstance(inner, (ast.Import, ast.ImportFrom)):
            names |= set(_imported(inner))
        elif isinstance(inner, ast.Delete):
            for target in inner.targets:
                names |= target_names(target)
        elif isinstance(inner, ast.Expr) and isinstance(inner.value, ast.Call):
            # obj.method(…) may change obj; a function (or a module's: np.random.shuffle(a)) its arguments
            call = inner.value
            receiver = root_name(call.func.value) if isinstance(call.func, ast.Attribute) else None
            if receiver and receiver not in imported:
                names.add(receiver)
                continue
            for argument in [*call.args, *(keyword.value for keyword in call.keywords)]:
                root = root_name(argument)
                if root and root not in imported:
                    names.add(root)
    return names


def _kills(node: ast.stmt) -> set[str]:
    """Names a top-level statement rebinds completely (earlier definitions of them are no longer needed)."""
    if isinstance(node, ast.Assign) and all(
        isinstance(target, ast.Name)
        or (isinstance(target, (ast.Tuple, ast.List)) and all(isinstance(e, ast.Name) for e in target.elts))
        for target in node.targets
    ):
        bound: set[str] = set()
        for target in node.targets:
            bound |= target_names(target)
        return bound - _loads(node.value)
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return set(_imported(node))
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    return set()


def _effect(node: ast.stmt, context: Context) -> bool:
    """A call on a module for its global effect (seeds, warning filters, library settings)."""
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return False
    call = node.value
    root = root_name(call.func)
    return _call_name(call) in EFFECT_CALLS or (root in context.modules and root not in context.plotting)


def statements(cells: list[Cell], context: Context) -> list[Statement]:
    """Every top-level statement of the (cleaned) cells, pruned and analysed, in execution order."""
    result: list[Statement] = []
    for cell in cells:
        if cell.tree is None:
            continue
        for position, node in enumerate(cell.tree.body):
            removed: list[ast.stmt] = []
            emptied: list[ast.stmt] = []
            pruned = _prune(node, context, removed, emptied)
            entry = Statement(
                cell=cell, position=position, node=node, pruned=pruned, removed=removed, emptied=emptied
            )
            if pruned is not None:
                entry.binds = _binds(pruned, context.modules)
                entry.reads = _loads(pruned)
                if isinstance(pruned, (ast.AugAssign, ast.Assign, ast.AnnAssign)):
                    targets = pruned.targets if isinstance(pruned, ast.Assign) else [pruned.target]
                    for target in targets:
                        if not isinstance(target, ast.Name):
                            entry.reads |= target_names(target)
                entry.kills = _kills(pruned)
                entry.effect = _effect(pruned, context)
            result.append(entry)
    return result


def backward_slice(program: list[Statement], end: int, needed: set[str]) -> list[Statement]:
    """The statements up to program[end] that the names in `needed` (and program[end]) depend on."""
    kept: list[Statement] = []
    wanted = set(needed)
    for position in range(end, -1, -1):
        statement = program[position]
        if statement.pruned is None:
            continue
        if position == end or statement.binds & wanted or statement.effect:
            kept.append(statement)
            wanted = (wanted - statement.kills) | statement.reads
    kept.reverse()
    return kept
