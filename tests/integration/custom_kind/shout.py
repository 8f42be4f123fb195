"""A Python workflow using the Upper kind of upper_kind.py (next to it)."""

from upper_kind import Upper

from kumeo_iac.spec import NATS, DataProcessor, WorkflowSpec

clean = DataProcessor(id="clean", input="source", config={"required_fields": ["text"]})
shout = Upper("text", id="shout", input=clean.output, glossary="glossary.json", config={"suffix": "!"},
              keep_if="quiet == true")

WORKFLOW = WorkflowSpec(
    name="Shout",
    source=NATS("words.in"),
    target=NATS("words.out"),
    agents=[clean, shout],
)
