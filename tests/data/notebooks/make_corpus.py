"""Regenerate the notebook corpus: `python tests/data/notebooks/make_corpus.py`.

Each notebook is modelled on how public notebooks look (Kaggle titanic/housing/churn/credit kernels, course
notebooks such as the scikit-learn video series): magics, shell escapes, EDA plots, display-only cells,
stale execution counts, baseline models before the tuned one, models saved into the notebook's folder.
The data is small (at most a few thousand rows): generated here into data/ as CSV, generated inside the
notebook, or one of scikit-learn's bundled datasets (no download). `expected.yaml` says what each must give.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


# --- notebook building blocks --------------------------------------------------------------------------------


def code(source: str, count: int | None = 0, tags: list[str] | None = None, output: str | None = None) -> dict:
    """A code cell; `count` None means never executed; `output` is a stored (stale) text output."""
    cell: dict[str, Any] = {
        "cell_type": "code",
        "execution_count": count,
        "metadata": {"tags": tags} if tags else {},
        "outputs": [],
        "source": source.strip("\n"),
    }
    if output is not None and count is not None:
        cell["outputs"] = [
            {"data": {"text/plain": output}, "execution_count": count, "metadata": {}, "output_type": "execute_result"}
        ]
    return cell


def md(source: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": source.strip("\n")}


def notebook(cells: list[dict], kernel: str = "python3", display: str = "Python 3 (ipykernel)", version: str = "3.11.7") -> dict:
    counter = 0
    for position, cell in enumerate(cells):
        cell["id"] = f"cell-{position:02d}"
    for cell in cells:  # realistic execution counts unless a cell sets its own
        if cell["cell_type"] == "code" and cell["execution_count"] == 0:
            counter += 1
            cell["execution_count"] = counter
            for output in cell["outputs"]:
                output["execution_count"] = counter
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": display, "language": "python", "name": kernel},
            "language_info": {
                "codemirror_mode": {"name": "ipython", "version": 3},
                "file_extension": ".py",
                "mimetype": "text/x-python",
                "name": "python",
                "nbconvert_exporter": "python",
                "pygments_lexer": "ipython3",
                "version": version,
            },
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


# --- data files ------------------------------------------------------------------------------------------------


def titanic(rng: np.random.Generator, rows: int = 620) -> str:
    sex = rng.choice(["male", "female"], rows, p=[0.64, 0.36])
    pclass = rng.choice([1, 2, 3], rows, p=[0.24, 0.21, 0.55])
    age = np.round(rng.normal(29, 14, rows).clip(0.5, 80), 1)
    sibsp = rng.choice([0, 1, 2, 3], rows, p=[0.68, 0.23, 0.06, 0.03])
    parch = rng.choice([0, 1, 2], rows, p=[0.76, 0.14, 0.10])
    fare = np.round(np.exp(rng.normal(2.9, 0.9, rows)) * (4 - pclass) / 2, 4)
    embarked = rng.choice(["S", "C", "Q"], rows, p=[0.72, 0.19, 0.09])
    logit = 1.2 + 2.4 * (sex == "female") - 0.9 * (pclass - 1) - 0.025 * age + 0.002 * fare
    survived = (rng.random(rows) < 1 / (1 + np.exp(-logit + 1.3))).astype(int)
    lines = ["PassengerId,Survived,Pclass,Name,Sex,Age,SibSp,Parch,Ticket,Fare,Cabin,Embarked"]
    for i in range(rows):
        age_text = "" if rng.random() < 0.19 else f"{age[i]}"
        cabin = f"C{rng.integers(10, 130)}" if pclass[i] == 1 and rng.random() < 0.7 else ""
        port = "" if i in (61, 229) else embarked[i]
        name = f'"Passenger{i}, {"Mrs." if sex[i] == "female" else "Mr."} Test"'
        lines.append(
            f"{i + 1},{survived[i]},{pclass[i]},{name},{sex[i]},{age_text},{sibsp[i]},{parch[i]},"
            f"T{rng.integers(1000, 99999)},{fare[i]},{cabin},{port}"
        )
    return "\n".join(lines) + "\n"


def housing(rng: np.random.Generator, rows: int = 520) -> str:
    area = rng.integers(1500, 20000, rows)
    quality = rng.integers(1, 11, rows)
    year = rng.integers(1900, 2010, rows)
    living = rng.integers(500, 4000, rows)
    baths = rng.integers(1, 4, rows)
    garage = rng.integers(0, 4, rows)
    hood = rng.choice(["NAmes", "CollgCr", "OldTown", "Edwards", "Somerst"], rows)
    bonus = {"NAmes": 0, "CollgCr": 15000, "OldTown": -12000, "Edwards": -8000, "Somerst": 25000}
    price = (
        20000 + 2.1 * area + 14000 * quality + 300 * (year - 1900) + 45 * living + 7000 * baths + 9000 * garage
        + np.array([bonus[h] for h in hood]) + rng.normal(0, 18000, rows)
    ).round(0)
    lines = ["Id,LotArea,OverallQual,YearBuilt,GrLivArea,FullBath,GarageCars,Neighborhood,SalePrice"]
    for i in range(rows):
        lines.append(
            f"{1000 + i},{area[i]},{quality[i]},{year[i]},{living[i]},{baths[i]},{garage[i]},{hood[i]},{price[i]:.0f}"
        )
    return "\n".join(lines) + "\n"


def churn(rng: np.random.Generator, rows: int = 1200) -> str:
    gender = rng.choice(["Male", "Female"], rows)
    senior = rng.choice([0, 1], rows, p=[0.84, 0.16])
    partner = rng.choice(["Yes", "No"], rows)
    tenure = rng.integers(0, 73, rows)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], rows, p=[0.55, 0.21, 0.24])
    payment = rng.choice(["Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"], rows)
    monthly = np.round(rng.uniform(18, 118, rows), 2)
    logit = -0.3 + 1.6 * (contract == "Month-to-month") - 0.045 * tenure + 0.012 * monthly + 0.5 * senior
    churned = rng.random(rows) < 1 / (1 + np.exp(-logit))
    lines = ["customerID,gender,SeniorCitizen,Partner,tenure,Contract,PaymentMethod,MonthlyCharges,TotalCharges,Churn"]
    for i in range(rows):
        total = " " if tenure[i] == 0 else f"{monthly[i] * tenure[i]:.2f}"
        lines.append(
            f"{rng.integers(1000, 9999)}-{chr(65 + i % 26)}{chr(66 + i % 24)}XQ,{gender[i]},{senior[i]},{partner[i]},"
            f"{tenure[i]},{contract[i]},{payment[i]},{monthly[i]},{total},{'Yes' if churned[i] else 'No'}"
        )
    return "\n".join(lines) + "\n"


def credit(rng: np.random.Generator, rows: int = 800) -> str:
    amount = rng.integers(250, 18000, rows)
    duration = rng.integers(4, 72, rows)
    age = rng.integers(19, 75, rows)
    savings = rng.choice(["little", "moderate", "rich", "quite rich"], rows, p=[0.6, 0.2, 0.1, 0.1])
    housing_kind = rng.choice(["own", "rent", "free"], rows, p=[0.7, 0.2, 0.1])
    purpose = rng.choice(["car", "radio/TV", "furniture/equipment", "business", "education"], rows)
    logit = -1.2 + 0.00012 * amount + 0.03 * duration - 0.02 * (age - 35) + 0.8 * (savings == "little")
    bad = rng.random(rows) < 1 / (1 + np.exp(-logit))
    lines = ['Credit Amount,Duration (months),Age [years],Saving accounts,Housing,Purpose,Risk']
    for i in range(rows):
        lines.append(
            f"{amount[i]},{duration[i]},{age[i]},{savings[i]},{housing_kind[i]},{purpose[i]},{'bad' if bad[i] else 'good'}"
        )
    return "\n".join(lines) + "\n"


def advertising(rng: np.random.Generator, rows: int = 200) -> str:
    tv = np.round(rng.uniform(0.7, 296, rows), 1)
    radio = np.round(rng.uniform(0, 49.6, rows), 1)
    paper = np.round(rng.uniform(0.3, 114, rows), 1)
    sales = np.round(2.9 + 0.046 * tv + 0.19 * radio - 0.001 * paper + rng.normal(0, 1.6, rows), 1)
    lines = [",TV,Radio,Newspaper,Sales"]
    lines += [f"{i + 1},{tv[i]},{radio[i]},{paper[i]},{sales[i]}" for i in range(rows)]
    return "\n".join(lines) + "\n"


def sensors(rng: np.random.Generator, rows: int = 700) -> str:
    temperature = np.round(rng.normal(70, 8, rows), 2)
    vibration = np.round(rng.gamma(2.0, 0.6, rows), 3)
    pressure = np.round(rng.normal(30, 3, rows), 2)
    hours = rng.integers(0, 20000, rows)
    logit = -9 + 0.08 * temperature + 1.1 * vibration + 0.00012 * hours
    failure = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    lines = ["machine_id,temperature,vibration,pressure,operating_hours,failure"]
    lines += [f"M{i:04d},{temperature[i]},{vibration[i]},{pressure[i]},{hours[i]},{failure[i]}" for i in range(rows)]
    return "\n".join(lines) + "\n"


# --- the notebooks -----------------------------------------------------------------------------------------------


def titanic_pandas_cleaning() -> dict:
    return notebook([
        md("# Titanic: Machine Learning from Disaster\nPredict survival from the passenger list."),
        code("""
import numpy as np # linear algebra
import pandas as pd # data processing, CSV file I/O (e.g. pd.read_csv)
import matplotlib.pyplot as plt
%matplotlib inline
import warnings
warnings.filterwarnings('ignore')
"""),
        code("!head -3 data/titanic.csv"),
        code("train = pd.read_csv('data/titanic.csv', index_col='PassengerId')\ntrain.head()", output="   Survived  Pclass ..."),
        code("train.shape", output="(620, 11)"),
        code("train.describe()"),
        code("train.isnull().sum()"),
        md("## Exploratory data analysis"),
        code("train['Survived'].value_counts().plot(kind='bar')\nplt.title('Survived')\nplt.show()"),
        code("fig, ax = plt.subplots(1, 2, figsize=(12, 4))\ntrain.groupby('Sex')['Survived'].mean().plot.bar(ax=ax[0])\ntrain['Age'].hist(bins=30, ax=ax[1])"),
        code("train.groupby(['Pclass', 'Sex'])['Survived'].mean()"),
        md("## Feature engineering"),
        code("""
# fill missing ages with the median, ports with the most common one
train['Age'] = train['Age'].fillna(train['Age'].median())
train['Embarked'] = train['Embarked'].fillna(train['Embarked'].mode()[0])
train['Sex'] = train['Sex'].map({'male': 0, 'female': 1})
train['FamilySize'] = train['SibSp'] + train['Parch'] + 1
"""),
        code("train = pd.get_dummies(train, columns=['Embarked'], drop_first=True)\ntrain.drop(['Name', 'Ticket', 'Cabin'], axis=1, inplace=True)\ntrain.head()"),
        code("""
from sklearn.model_selection import train_test_split
from sklearn.linear_model import LogisticRegression
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, classification_report

X = train.drop('Survived', axis=1)
y = train['Survived']
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=42, stratify=y)
"""),
        md("### Baseline"),
        code("logreg = LogisticRegression(max_iter=1000)\nlogreg.fit(X_train, y_train)\nprint('logreg accuracy', accuracy_score(y_test, logreg.predict(X_test)))"),
        md("### Random forest"),
        code("rf = RandomForestClassifier(n_estimators=150, max_depth=6, random_state=1)\nrf.fit(X_train, y_train)\ny_pred = rf.predict(X_test)\nprint(classification_report(y_test, y_pred))"),
        code("pd.Series(rf.feature_importances_, index=X.columns).sort_values().plot.barh()"),
    ])


def iris_numpy_knn() -> dict:
    return notebook([
        md("# Getting started with iris\nK-nearest neighbours on the iris measurements (plain numpy arrays)."),
        code("from sklearn.datasets import load_iris\nfrom sklearn.neighbors import KNeighborsClassifier\nfrom sklearn.model_selection import train_test_split\nfrom sklearn import metrics"),
        code("# save \"bunch\" object containing iris dataset and its attributes\niris = load_iris()\ntype(iris)"),
        code("print(iris.feature_names)\nprint(iris.target_names)"),
        code("X = iris.data\ny = iris.target\nprint(X.shape, y.shape)"),
        code("# no random_state: a different split on every run\nX_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3)"),
        code("knn = KNeighborsClassifier(n_neighbors=5)\n%time knn.fit(X_train, y_train)"),
        code("y_pred = knn.predict(X_test)\nprint(metrics.accuracy_score(y_test, y_pred))"),
        code("knn.predict([[3, 5, 4, 2]])"),
    ])


def housing_regression() -> dict:
    return notebook([
        md("# House prices: regression\nData: `data/housing.csv` (index column `Id`)."),
        code("import os\nimport numpy as np\nimport pandas as pd\nimport matplotlib.pyplot as plt\n%matplotlib inline"),
        code("houses = pd.read_csv('data/housing.csv', index_col='Id')\nhouses.head()"),
        code("houses.info()"),
        code("plt.scatter(houses['GrLivArea'], houses['SalePrice'], alpha=0.4)\nplt.xlabel('GrLivArea'); plt.ylabel('SalePrice')"),
        code("houses.corr(numeric_only=True)['SalePrice'].sort_values(ascending=False)"),
        code("houses = pd.get_dummies(houses, columns=['Neighborhood'])\nX = houses.drop(columns='SalePrice')\ny = houses['SalePrice']"),
        code("from sklearn.model_selection import train_test_split\nX_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)"),
        code("from sklearn.linear_model import LinearRegression\nfrom sklearn.metrics import mean_squared_error, r2_score\nlr = LinearRegression().fit(X_train, y_train)\nprint('linear rmse', np.sqrt(mean_squared_error(y_test, lr.predict(X_test))))"),
        code("%%time\nfrom sklearn.ensemble import RandomForestRegressor\nrf = RandomForestRegressor(n_estimators=120, random_state=0, n_jobs=-1)\nrf.fit(X_train, y_train)"),
        code("pred = rf.predict(X_test)\nprint('rf rmse', np.sqrt(mean_squared_error(y_test, pred)), 'r2', r2_score(y_test, pred))"),
        code("import joblib\nos.makedirs('models', exist_ok=True)\njoblib.dump(rf, 'models/house_rf.joblib')"),
        code("# check that the saved model loads\nreloaded = joblib.load('models/house_rf.joblib')\nreloaded.score(X_test, y_test)"),
    ])


def churn_pipeline_gridsearch() -> dict:
    return notebook([
        md("# Telco customer churn\nA ColumnTransformer pipeline, a baseline, then a grid search."),
        code("import pandas as pd\nimport numpy as np\nimport pickle\nfrom sklearn.compose import ColumnTransformer\nfrom sklearn.pipeline import Pipeline\nfrom sklearn.preprocessing import OneHotEncoder, StandardScaler\nfrom sklearn.impute import SimpleImputer\nfrom sklearn.linear_model import LogisticRegression\nfrom sklearn.ensemble import GradientBoostingClassifier\nfrom sklearn.model_selection import train_test_split, GridSearchCV\nfrom sklearn.metrics import classification_report, roc_auc_score"),
        code("df = pd.read_csv('data/churn.csv')\ndf.head()"),
        code("df.dtypes"),
        code("# TotalCharges has blanks for new customers\ndf['TotalCharges'] = pd.to_numeric(df['TotalCharges'], errors='coerce')\ndf['Churn'] = df['Churn'].map({'Yes': 1, 'No': 0})\ndf = df.drop(columns=['customerID'])"),
        code("df['Churn'].value_counts(normalize=True)"),
        code("""
categorical = ['gender', 'Partner', 'Contract', 'PaymentMethod']
numeric = ['SeniorCitizen', 'tenure', 'MonthlyCharges', 'TotalCharges']
X = df[categorical + numeric]
y = df['Churn']
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=7, stratify=y)
"""),
        code("""
preprocess = ColumnTransformer([
    ('cat', OneHotEncoder(handle_unknown='ignore'), categorical),
    ('num', Pipeline([('impute', SimpleImputer(strategy='median')), ('scale', StandardScaler())]), numeric),
])
"""),
        md("## Baseline"),
        code("baseline = Pipeline([('prep', preprocess), ('clf', LogisticRegression(max_iter=1000))])\nbaseline.fit(X_train, y_train)\nprint('baseline AUC', roc_auc_score(y_test, baseline.predict_proba(X_test)[:, 1]))"),
        md("## Gradient boosting, tuned"),
        code("""
pipe = Pipeline([('prep', preprocess), ('clf', GradientBoostingClassifier(random_state=0))])
params = {'clf__n_estimators': [50, 100], 'clf__max_depth': [2, 3]}
grid = GridSearchCV(pipe, params, cv=3, scoring='roc_auc', n_jobs=1)
grid.fit(X_train, y_train)
print(grid.best_params_, grid.best_score_)
"""),
        code("print(classification_report(y_test, grid.predict(X_test)))"),
        code("with open('churn_model.pkl', 'wb') as f:\n    pickle.dump(grid.best_estimator_, f)"),
    ])


def credit_svc_no_proba() -> dict:
    return notebook([
        md("# German credit risk — SVM\nColumn names with spaces and brackets; an SVC without `probability=True`."),
        code("import pandas as pd\nfrom sklearn.model_selection import train_test_split\nfrom sklearn.pipeline import make_pipeline\nfrom sklearn.preprocessing import StandardScaler\nfrom sklearn.svm import SVC\nfrom sklearn.metrics import f1_score, roc_auc_score"),
        code("credit = pd.read_csv('data/credit.csv')\ncredit.sample(5, random_state=1)"),
        code("credit['Risk'].value_counts()"),
        code("credit['Risk'] = (credit['Risk'] == 'bad').astype(int)\ncredit = pd.get_dummies(credit, columns=['Saving accounts', 'Housing', 'Purpose'], dtype=int)\ncredit.columns"),
        code("X = credit.drop('Risk', axis=1)\ny = credit['Risk']\nX_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=3)"),
        code("svm = make_pipeline(StandardScaler(), SVC(C=1.0, kernel='rbf', class_weight='balanced'))\nsvm.fit(X_train, y_train)"),
        code("print('f1', f1_score(y_test, svm.predict(X_test)))\nprint('auc', roc_auc_score(y_test, svm.decision_function(X_test)))"),
    ])


def advertising_refit_fewer_columns() -> dict:
    return notebook([
        md("# Linear regression on the advertising data\nFitted on three features, refit on all rows, finally on two features."),
        code("import pandas as pd\nimport numpy as np\nfrom sklearn.model_selection import train_test_split\nfrom sklearn.linear_model import LinearRegression\nfrom sklearn import metrics"),
        code("# read CSV file from the 'data' subdirectory using a relative path\ndata = pd.read_csv('data/Advertising.csv', index_col=0)\ndata.head()"),
        code("feature_cols = ['TV', 'Radio', 'Newspaper']\nX = data[feature_cols]\ny = data.Sales\nX_train, X_test, y_train, y_test = train_test_split(X, y, random_state=1)"),
        code("linreg = LinearRegression()\nlinreg.fit(X_train, y_train)\nlist(zip(feature_cols, linreg.coef_))"),
        code("y_pred = linreg.predict(X_test)\nprint(np.sqrt(metrics.mean_squared_error(y_test, y_pred)))"),
        code("# refit on every row\nlinreg.fit(X, y)"),
        code("""
# Newspaper does not help: drop it
feature_cols = ['TV', 'Radio']
X = data[feature_cols]
y = data.Sales
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=1)
linreg.fit(X_train, y_train)
y_pred = linreg.predict(X_test)
print(np.sqrt(metrics.mean_squared_error(y_test, y_pred)))
"""),
    ])


def refit_other_labels() -> dict:
    return notebook([
        md("# Wine: from three cultivars to one-vs-rest\nThe same estimator refit on all rows, then on other labels."),
        code("from sklearn.datasets import load_wine\nfrom sklearn.linear_model import LogisticRegression\nfrom sklearn.model_selection import train_test_split\nfrom sklearn.preprocessing import StandardScaler\nfrom sklearn.pipeline import make_pipeline"),
        code("wine = load_wine(as_frame=True)\nX, y = wine.data, wine.target\nX.shape"),
        code("X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)\nclf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))\nclf.fit(X_train, y_train)\nclf.score(X_test, y_test)"),
        code("# every row\nclf.fit(X, y)"),
        code("# is it cultivar 0 or not?\ny_train_bin = (y_train == 0).astype(int)\ny_test_bin = (y_test == 0).astype(int)\nclf.fit(X_train, y_train_bin)\nclf.score(X_test, y_test_bin)"),
    ])


def scratch_models_then_final() -> dict:
    return notebook([
        md("# Breast cancer: compare models, then train the chosen one"),
        code("import pandas as pd\nfrom sklearn.datasets import load_breast_cancer\nfrom sklearn.model_selection import train_test_split, cross_val_score\nfrom sklearn.linear_model import LogisticRegression\nfrom sklearn.tree import DecisionTreeClassifier\nfrom sklearn.ensemble import RandomForestClassifier\nfrom sklearn.neighbors import KNeighborsClassifier"),
        code("data = load_breast_cancer(as_frame=True)\ndf = data.frame\nX = df.drop(columns='target')\ny = df['target']\nX_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=11)"),
        code("""
models = {
    'Logistic Regression': LogisticRegression(max_iter=300, solver='liblinear'),
    'Decision Tree': DecisionTreeClassifier(random_state=0),
    'KNN': KNeighborsClassifier(),
}
results = {}
for name, model in models.items():
    model.fit(X_train, y_train)
    results[name] = model.score(X_test, y_test)
pd.Series(results).sort_values()
"""),
        code("# the winner, a bit bigger\nbest_model = RandomForestClassifier(n_estimators=200, random_state=0).fit(X_train, y_train)\nbest_model.score(X_test, y_test)"),
    ])


def cannot_decide() -> dict:
    return notebook([
        md("# Which classifier?\nThree models fitted in one loop, no final choice."),
        code("from sklearn.datasets import load_breast_cancer\nfrom sklearn.model_selection import train_test_split\nfrom sklearn.linear_model import LogisticRegression\nfrom sklearn.naive_bayes import GaussianNB\nfrom sklearn.tree import DecisionTreeClassifier\nfrom sklearn.pipeline import make_pipeline\nfrom sklearn.preprocessing import StandardScaler"),
        code("X, y = load_breast_cancer(return_X_y=True, as_frame=True)\nX_train, X_test, y_train, y_test = train_test_split(X, y, random_state=5)"),
        code("""
classifiers = [make_pipeline(StandardScaler(), LogisticRegression()), GaussianNB(), DecisionTreeClassifier(max_depth=4)]
for clf in classifiers:
    clf.fit(X_train, y_train)
    print(type(clf).__name__, clf.score(X_test, y_test))
"""),
    ])


def output_cache_underscore() -> dict:
    cells = [
        md("# Output cache and underscore names"),
        code("from sklearn.datasets import load_wine\nfrom sklearn.model_selection import train_test_split\nfrom sklearn.tree import DecisionTreeClassifier\nfrom sklearn.naive_bayes import GaussianNB", count=1),
        code("X, y = load_wine(return_X_y=True, as_frame=True)\nX_train, X_test, y_train, y_test = train_test_split(X, y, stratify=y, random_state=2)", count=2),
        code("_clf = DecisionTreeClassifier(max_depth=4, random_state=0)", count=3),
        code("_clf.fit(X_train, y_train)", count=4, output="DecisionTreeClassifier(max_depth=4, random_state=0)"),
        code("_", count=5, output="DecisionTreeClassifier(max_depth=4, random_state=0)"),
        code("Out[4].get_depth(), __", count=6),
        code("# a quick look at another model, only ever in the output cache\nGaussianNB().fit(X_train, y_train)", count=7),
        code("_7.score(X_test, y_test), _clf.score(X_test, y_test)", count=8),
    ]
    return notebook(cells)


def integer_column_names() -> dict:
    return notebook([
        md("# A DataFrame built from an array: integer column names"),
        code("import numpy as np\nimport pandas as pd\nfrom sklearn.ensemble import GradientBoostingClassifier\nfrom sklearn.model_selection import train_test_split"),
        code("rng = np.random.RandomState(0)\nX = pd.DataFrame(rng.randn(600, 6))\ny = (X[0] + 0.5 * X[3] - X[5] + rng.randn(600) * 0.5 > 0).astype(int)\nX.columns"),
        code("X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)\ngb = GradientBoostingClassifier(n_estimators=60, random_state=0).fit(X_train, y_train)\ngb.score(X_test, y_test)"),
    ])


def stale_notebook() -> dict:
    cells = [
        md("# Diabetes progression (a notebook run in many orders)"),
        code('"""\nTODO: try a gradient boosting model later\n"""', count=14),
        code("import numpy as np\nfrom sklearn.datasets import load_diabetes\nfrom sklearn.tree import DecisionTreeRegressor\nfrom sklearn.model_selection import train_test_split", count=3),
        code("# from sklearn.svm import SVR\n# svr = SVR().fit(X_train, y_train)", count=None),
        code("X, y = load_diabetes(return_X_y=True, as_frame=True)", count=9),
        code("X.describe()", count=2),
        code("X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=4)", count=None),
        code("tree = DecisionTreeRegressor(max_depth=4, min_samples_leaf=10, random_state=0)\ntree.fit(X_train, y_train)", count=7),
        code("'notes: depth 4 looked best'", count=None),
        code("print(np.mean((tree.predict(X_test) - y_test) ** 2) ** 0.5)", count=5),
    ]
    return notebook(cells)


def uninstalled_kernel() -> dict:
    cells = [
        md("# Breast cancer screening (written in a conda environment)"),
        code("from sklearn.datasets import load_breast_cancer\nfrom sklearn.linear_model import LogisticRegression\nfrom sklearn.preprocessing import StandardScaler\nfrom sklearn.pipeline import Pipeline\nfrom sklearn.model_selection import train_test_split"),
        code("X, y = load_breast_cancer(return_X_y=True, as_frame=True)\nX_train, X_test, y_train, y_test = train_test_split(X, y, random_state=8)"),
        code("screening = Pipeline([('scale', StandardScaler()), ('logreg', LogisticRegression(C=0.5, max_iter=1000))])\nscreening.fit(X_train, y_train)\nscreening.score(X_test, y_test)"),
    ]
    return notebook(cells, kernel="conda-env-ds-py", display="Python [conda env:ds]", version="3.7.6")


def no_model_eda() -> dict:
    return notebook([
        md("# Exploring the advertising data (no model yet)"),
        code("import pandas as pd\nimport matplotlib.pyplot as plt\nfrom sklearn.neighbors import KNeighborsRegressor\nfrom sklearn.model_selection import cross_val_score"),
        code("ads = pd.read_csv('data/Advertising.csv', index_col=0)\nads.describe()"),
        code("ads.plot.scatter(x='TV', y='Sales')"),
        code("knn = KNeighborsRegressor(n_neighbors=7)\nscores = cross_val_score(knn, ads[['TV', 'Radio']], ads['Sales'], cv=5)\nscores.mean()"),
    ])


def old_api() -> dict:
    return notebook([
        md("# Titanic with one-hot encoding (written for scikit-learn 0.24)"),
        code("import pandas as pd\nfrom sklearn.preprocessing import OneHotEncoder\nfrom sklearn.linear_model import LogisticRegression"),
        code("df = pd.read_csv('data/titanic.csv')\ndf = df.loc[df.Embarked.notna(), ['Survived', 'Pclass', 'Sex', 'Embarked']]"),
        code("ohe = OneHotEncoder(sparse=False)\nohe.fit_transform(df[['Sex']])"),
        code("logreg = LogisticRegression(solver='liblinear').fit(ohe.transform(df[['Sex']]), df.Survived)"),
    ])


def raises() -> dict:
    return notebook([
        md("# Data checks before training"),
        code("import numpy as np\nimport pandas as pd"),
        code("rng = np.random.default_rng(3)\ntransactions = pd.DataFrame({'amount': rng.normal(50, 40, 300), 'label': rng.integers(0, 2, 300)})"),
        code("# the model assumes positive amounts\nassert (transactions['amount'] > 0).all(), 'negative amounts in the data'"),
        code("from sklearn.linear_model import LogisticRegression\nmodel = LogisticRegression().fit(transactions[['amount']], transactions['label'])"),
    ])


def tagged_choice() -> dict:
    return notebook([
        md("# Sensor failures: the model to ship is tagged"),
        code("import numpy as np\nimport pandas as pd\nfrom sklearn.model_selection import train_test_split\nfrom sklearn.ensemble import RandomForestClassifier\nfrom sklearn.tree import DecisionTreeClassifier"),
        code("rng = np.random.default_rng(42)\nn = 900\nreadings = pd.DataFrame({'temperature': rng.normal(70, 8, n), 'vibration': rng.gamma(2, 0.6, n), 'hours': rng.integers(0, 20000, n)})\nfailure = (0.06 * readings.temperature + 1.2 * readings.vibration + 0.0001 * readings.hours + rng.normal(0, 1, n) > 8.1).astype(int)"),
        code("X_train, X_test, y_train, y_test = train_test_split(readings, failure, test_size=0.25, random_state=0)"),
        code("forest = RandomForestClassifier(n_estimators=80, max_depth=6, random_state=0)\nforest.fit(X_train, y_train)\nforest.score(X_test, y_test)", tags=["mlship-model"]),
        code("# just curious: a single shallow tree\nstump = DecisionTreeClassifier(max_depth=2).fit(X_train, y_train)\nstump.score(X_test, y_test)"),
    ])


def comment_choice() -> dict:
    return notebook([
        md("# Digits: the notebook says which model to ship"),
        code("from sklearn.datasets import load_digits\nfrom sklearn.model_selection import train_test_split\nfrom sklearn.linear_model import LogisticRegression\nfrom sklearn.ensemble import ExtraTreesClassifier"),
        code("digits = load_digits(as_frame=True)\nX_train, X_test, y_train, y_test = train_test_split(digits.data, digits.target, test_size=0.2, random_state=1)"),
        code("# mlship: model=logreg\nlogreg = LogisticRegression(max_iter=300)\nlogreg.fit(X_train, y_train)\nlogreg.score(X_test, y_test)"),
        code("trees = ExtraTreesClassifier(n_estimators=50, random_state=0).fit(X_train, y_train)\ntrees.score(X_test, y_test)"),
    ])


def custom_transformer() -> dict:
    return notebook([
        md("# Housing with a custom transformer defined in the notebook"),
        code("import numpy as np\nimport pandas as pd\nfrom sklearn.base import BaseEstimator, TransformerMixin\nfrom sklearn.pipeline import Pipeline\nfrom sklearn.preprocessing import FunctionTransformer\nfrom sklearn.linear_model import Ridge\nfrom sklearn.model_selection import train_test_split"),
        code("LOG_COLUMNS = ['LotArea', 'GrLivArea']\n\nclass LogFeatures(BaseEstimator, TransformerMixin):\n    \"\"\"log1p of skewed columns.\"\"\"\n\n    def __init__(self, columns=None):\n        self.columns = columns\n\n    def fit(self, X, y=None):\n        return self\n\n    def transform(self, X):\n        X = X.copy()\n        for column in self.columns or LOG_COLUMNS:\n            X[column] = np.log1p(X[column])\n        return X"),
        code("def add_age(frame):\n    frame = frame.copy()\n    frame['Age'] = 2010 - frame['YearBuilt']\n    return frame.drop(columns=['YearBuilt'])"),
        code("houses = pd.read_csv('data/housing.csv', index_col='Id').drop(columns=['Neighborhood'])\nX_train, X_test, y_train, y_test = train_test_split(houses.drop(columns='SalePrice'), houses['SalePrice'], random_state=0)"),
        code("model = Pipeline([('age', FunctionTransformer(add_age)), ('log', LogFeatures()), ('ridge', Ridge(alpha=1.0))])\nmodel.fit(X_train, y_train)\nmodel.score(X_test, y_test)"),
        code("import joblib\njoblib.dump(model, 'housing_pipeline.joblib')"),
    ])


def text_pipeline() -> dict:
    return notebook([
        md("# Spam or ham: a text pipeline"),
        code("import random\nimport pandas as pd\nfrom sklearn.feature_extraction.text import TfidfVectorizer\nfrom sklearn.naive_bayes import MultinomialNB\nfrom sklearn.pipeline import make_pipeline\nfrom sklearn.model_selection import train_test_split"),
        code("""
random.seed(0)
spam_words = ['win', 'free', 'prize', 'cash', 'click', 'offer', 'urgent', 'winner']
ham_words = ['meeting', 'lunch', 'tomorrow', 'project', 'thanks', 'call', 'home', 'report']
common = ['the', 'you', 'now', 'today', 'please', 'a', 'for']
def message(words):
    return ' '.join(random.choice(words + common) for _ in range(random.randint(4, 12)))
sms = pd.DataFrame({'message': [message(spam_words) for _ in range(300)] + [message(ham_words) for _ in range(700)],
                    'label': ['spam'] * 300 + ['ham'] * 700})
sms.head()
"""),
        code("X_train, X_test, y_train, y_test = train_test_split(sms['message'], sms['label'], test_size=0.25, random_state=0)"),
        code("spam_filter = make_pipeline(TfidfVectorizer(), MultinomialNB())\nspam_filter.fit(X_train, y_train)\nspam_filter.score(X_test, y_test)"),
    ])


def tfidf_outside_pipeline() -> dict:
    return notebook([
        md("# SMS spam with a TF-IDF matrix made outside the model"),
        code("import pandas as pd\nfrom sklearn.feature_extraction.text import TfidfVectorizer\nfrom sklearn.naive_bayes import MultinomialNB\nfrom sklearn.model_selection import train_test_split"),
        code("texts = ['win cash now', 'lunch tomorrow?', 'free prize click', 'see you at home', 'urgent offer today', 'thanks for the report'] * 40\nlabels = [1, 0, 1, 0, 1, 0] * 40\nX_train, X_test, y_train, y_test = train_test_split(pd.Series(texts, name='text'), pd.Series(labels), random_state=0)"),
        code("vectorizer = TfidfVectorizer()\nX_train_tfidf = vectorizer.fit_transform(X_train)\nX_test_tfidf = vectorizer.transform(X_test)"),
        code("nb = MultinomialNB().fit(X_train_tfidf, y_train)\nnb.score(X_test_tfidf, y_test)"),
    ])


def parent_data_path() -> dict:
    return notebook([
        md("# Machine failures (a notebook in notebooks/, data in ../data/)"),
        code("import pandas as pd\nfrom sklearn.model_selection import train_test_split\nfrom sklearn.ensemble import HistGradientBoostingClassifier"),
        code("DATA = '../data/'\nsensors = pd.read_csv(DATA + 'sensors.csv').set_index('machine_id')\nsensors.failure.mean()"),
        code("X = sensors.drop(columns='failure')\ny = sensors['failure']\nX_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.3, random_state=1)"),
        code("hgb = HistGradientBoostingClassifier(max_iter=100, random_state=0)\nhgb.fit(X_train, y_train)\nhgb.score(X_valid, y_valid)"),
    ])


def unseeded_kfold() -> dict:
    return notebook([
        md("# Cross-validation by hand (unseeded KFold)"),
        code("import numpy as np\nfrom sklearn.datasets import load_diabetes\nfrom sklearn.linear_model import Ridge\nfrom sklearn.model_selection import KFold\nfrom sklearn.metrics import mean_squared_error"),
        code("X, y = load_diabetes(return_X_y=True, as_frame=True)\nkf = KFold(n_splits=5, shuffle=True)  # no random_state"),
        code("""
model = Ridge(alpha=0.5)
errors = []
for train_idx, val_idx in kf.split(X):
    X_tr, X_val = X.iloc[train_idx], X.iloc[val_idx]
    y_tr, y_val = y.iloc[train_idx], y.iloc[val_idx]
    model.fit(X_tr, y_tr)
    errors.append(mean_squared_error(y_val, model.predict(X_val)) ** 0.5)
np.mean(errors)
"""),
    ])


def magics_and_shell() -> dict:
    return notebook([
        md("# Setup-heavy notebook (Colab style)"),
        code("!pip install scikit-learn pandas\n%pip install numpy"),
        code("%load_ext autoreload\n%autoreload 2\n%config InlineBackend.figure_format = 'retina'"),
        code("%%capture\nimport numpy as np\nimport pandas as pd\nfrom sklearn.datasets import load_diabetes\nprint('imported')"),
        code("files = !ls\n!ls data | head -3"),
        code("X, y = load_diabetes(return_X_y=True, as_frame=True)\nX?"),
        code("%%time\nfrom sklearn.model_selection import train_test_split\nfrom sklearn.ensemble import GradientBoostingRegressor\nX_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)\ngbr = GradientBoostingRegressor(n_estimators=80, max_depth=2, random_state=0)"),
        code("%time gbr.fit(X_train, y_train)"),
        code("%timeit -n1 -r1 gbr.predict(X_test)"),
        code("gbr.score(X_test, y_test)"),
    ])


def frame_level_split() -> dict:
    return notebook([
        md("# Splitting the whole table"),
        code("from sklearn.datasets import load_breast_cancer\nfrom sklearn.model_selection import train_test_split\nfrom sklearn.ensemble import HistGradientBoostingClassifier"),
        code("df = load_breast_cancer(as_frame=True).frame\ntrain_df, test_df = train_test_split(df, test_size=0.25, random_state=7)\nfeatures = ['mean radius', 'mean texture', 'mean smoothness', 'worst area', 'worst concavity']"),
        code("model = HistGradientBoostingClassifier(random_state=0).fit(train_df[features], train_df['target'])\nmodel.score(test_df[features], test_df['target'])"),
    ])


def scaler_outside_pipeline() -> dict:
    return notebook([
        md("# Wine with a scaler outside the model"),
        code("import pickle\nfrom sklearn.datasets import load_wine\nfrom sklearn.model_selection import train_test_split\nfrom sklearn.preprocessing import StandardScaler\nfrom sklearn.svm import SVC"),
        code("X, y = load_wine(return_X_y=True)\nX_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0)"),
        code("sc = StandardScaler()\nX_train = sc.fit_transform(X_train)\nX_test = sc.transform(X_test)"),
        code("svc = SVC(probability=True, random_state=0)\nsvc.fit(X_train, y_train)\nsvc.score(X_test, y_test)"),
        code("pickle.dump({'model': svc, 'scaler': sc}, open('wine_svc.pkl', 'wb'))"),
    ])


def grid_on_all_rows() -> dict:
    return notebook([
        md("# Grid search over every row (no held-out set)"),
        code("from sklearn.datasets import load_iris\nfrom sklearn.neighbors import KNeighborsClassifier\nfrom sklearn.model_selection import GridSearchCV\nimport pandas as pd"),
        code("iris = load_iris(as_frame=True)\nX = iris.data\ny = iris.target"),
        code("knn = KNeighborsClassifier()\ngrid = GridSearchCV(knn, {'n_neighbors': list(range(1, 16))}, cv=5, scoring='accuracy')\ngrid.fit(X, y)"),
        code("pd.DataFrame(grid.cv_results_)[['mean_test_score', 'params']].head()"),
        code("grid.best_params_"),
    ])


NOTEBOOKS = {
    "titanic_pandas_cleaning": titanic_pandas_cleaning,
    "iris_numpy_knn": iris_numpy_knn,
    "housing_regression": housing_regression,
    "churn_pipeline_gridsearch": churn_pipeline_gridsearch,
    "credit_svc_no_proba": credit_svc_no_proba,
    "advertising_refit_fewer_columns": advertising_refit_fewer_columns,
    "refit_other_labels": refit_other_labels,
    "scratch_models_then_final": scratch_models_then_final,
    "cannot_decide": cannot_decide,
    "output_cache_underscore": output_cache_underscore,
    "integer_column_names": integer_column_names,
    "stale_notebook": stale_notebook,
    "uninstalled_kernel": uninstalled_kernel,
    "no_model_eda": no_model_eda,
    "old_api": old_api,
    "raises": raises,
    "tagged_choice": tagged_choice,
    "comment_choice": comment_choice,
    "custom_transformer": custom_transformer,
    "text_pipeline": text_pipeline,
    "unseeded_kfold": unseeded_kfold,
    "magics_and_shell": magics_and_shell,
    "frame_level_split": frame_level_split,
    "scaler_outside_pipeline": scaler_outside_pipeline,
    "grid_on_all_rows": grid_on_all_rows,
    "tfidf_outside_pipeline": tfidf_outside_pipeline,
}
NESTED = {"project/notebooks/machine_failures": parent_data_path}


def main() -> None:
    rng = np.random.default_rng(20240611)
    data = HERE / "data"
    data.mkdir(exist_ok=True)
    (data / "titanic.csv").write_text(titanic(rng))
    (data / "housing.csv").write_text(housing(rng))
    (data / "churn.csv").write_text(churn(rng))
    (data / "credit.csv").write_text(credit(rng))
    (data / "Advertising.csv").write_text(advertising(rng))
    (HERE / "project" / "data").mkdir(parents=True, exist_ok=True)
    (HERE / "project" / "data" / "sensors.csv").write_text(sensors(rng))
    for name, build in {**NOTEBOOKS, **NESTED}.items():
        path = HERE / f"{name}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {len(NOTEBOOKS) + len(NESTED)} notebooks and their data under {HERE}")


if __name__ == "__main__":
    main()
