"""The store: the service's tables, CRUD (where every commit happens), Optuna's tables read
with SQL, Optuna's storage, uploaded datasets, API keys and the migrations."""
