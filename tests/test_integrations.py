"""The LangChain and LlamaIndex adapters against the real frameworks, over a real ingested corpus."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever as LangChainBaseRetriever
from langchain_core.runnables import RunnablePassthrough
from langchain_core.vectorstores import InMemoryVectorStore
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.retrievers import BaseRetriever as LlamaIndexBaseRetriever
from llama_index.core.schema import MetadataMode, TextNode

import ragkit
from ragkit.errors import InputError

QUESTION = "how do astronomers discover planets around other stars"
OTHER_QUESTION = "how should I sharpen a kitchen knife"


@pytest.fixture(scope="module")
def kit(ingested):
    return ingested.kit


@pytest.fixture(scope="module")
def sources(ingested) -> dict[str, str]:
    return {path.name: str(path) for path in ingested.docs.iterdir()}


def format_docs(documents: list[Document]) -> str:
    return "\n\n".join(document.page_content for document in documents)


# LangChain


def test_langchain_retriever_documents_are_the_search_hits(kit):
    retriever = kit.as_langchain_retriever(k=3)
    assert isinstance(retriever, LangChainBaseRetriever)
    documents = retriever.invoke(QUESTION)
    hits = kit.search(QUESTION, top_k=3)
    assert [d.id for d in documents] == [h.id for h in hits]
    assert documents[0].page_content == hits[0].text
    assert documents[0].metadata == {**hits[0].metadata, "score": hits[0].score}
    assert "transit method" in documents[0].page_content


def test_langchain_retriever_ainvoke_and_batch_agree_with_search(kit):
    retriever = kit.as_langchain_retriever(k=2)
    expected = {q: [h.id for h in kit.search(q, top_k=2)] for q in (QUESTION, OTHER_QUESTION)}
    assert [d.id for d in asyncio.run(retriever.ainvoke(QUESTION))] == expected[QUESTION]
    batched = retriever.batch([QUESTION, OTHER_QUESTION])
    assert [[d.id for d in documents] for documents in batched] == list(expected.values())


def test_langchain_retriever_passes_filters(kit, sources):
    retriever = kit.as_langchain_retriever(k=10, filters={"source": sources["volcanoes.txt"]})
    documents = retriever.invoke(QUESTION)
    assert [d.metadata["source"] for d in documents] == [sources["volcanoes.txt"]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"top_k": 10},
            r"unknown option 'top_k' \(did you mean k\?\); it accepts .*k, filters, score_threshold",
        ),
        ({"search_kwargs": {"k": 10}}, "unknown option 'search_kwargs' .*not inside search_kwargs"),
        ({"filter": {"source": "a.pdf"}}, r"unknown option 'filter' \(did you mean filters\?\)"),
    ],
)
def test_langchain_retriever_refuses_options_it_does_not_know(kit, options, message):
    # Ignored, a misspelled filter would search every tenant's sections.
    with pytest.raises(InputError, match=message):
        kit.as_langchain_retriever(**options)


def test_langchain_retriever_takes_search_options_per_call(kit, sources):
    retriever = kit.as_langchain_retriever(k=5)
    assert len(retriever.invoke(QUESTION, k=2)) == 2
    assert len(asyncio.run(retriever.ainvoke(QUESTION, k=1))) == 1
    only = {"source": sources["volcanoes.txt"]}
    assert {d.metadata["source"] for d in retriever.invoke(QUESTION, filters=only)} == {only["source"]}
    assert len(retriever.invoke(QUESTION)) == 5  # a call's options are that call's only


def test_langchain_retriever_call_filters_narrow_and_never_widen(kit, sources):
    tenant = kit.as_langchain_retriever(k=10, filters={"source": sources["volcanoes.txt"]})
    with pytest.raises(InputError, match=r"invoke filters \['source'\], which the retriever already filters"):
        tenant.invoke(QUESTION, filters={"source": sources["astronomy.md"]})
    narrowed = tenant.invoke(QUESTION, filters={"section_index": 0})
    assert {(d.metadata["source"], d.metadata["section_index"]) for d in narrowed} == {
        (sources["volcanoes.txt"], 0)
    }


def test_langchain_retriever_refuses_call_options_it_does_not_know(kit):
    retriever = kit.as_langchain_retriever()
    with pytest.raises(InputError, match=r"invoke got unknown option 'top_k' \(did you mean k\?\)"):
        retriever.invoke(QUESTION, top_k=2)
    with pytest.raises(InputError, match="unknown option 'filter'"):
        asyncio.run(retriever.ainvoke(QUESTION, filter={"source": "a.pdf"}))


def test_score_is_reserved_for_the_search_score_of_langchain_documents(tmp_path):
    # A user's "score" would be overwritten by the hit's score in every Document's metadata.
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Grades\n\nThe essay was graded and its grade recorded.\n")
    refused = pytest.raises(InputError, match=r"metadata keys \['score'\] are reserved by ragkit")
    with ragkit.open("grades", store=tmp_path / "store", model="minilm") as grades, refused:
        grades.ingest([tmp_path / "docs"], workers=0, metadata={"score": "A+", "course": "history"})


def test_langchain_rag_chain_puts_the_best_section_in_the_prompt(kit):
    retriever = kit.as_langchain_retriever(k=2)
    prompt = ChatPromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}")
    chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt
    text = chain.invoke(OTHER_QUESTION).to_string()
    assert "whetstone" in text
    assert text.endswith(f"Question: {OTHER_QUESTION}")


def test_langchain_retriever_refuses_an_empty_query(kit):
    with pytest.raises(InputError, match="query is empty"):
        kit.as_langchain_retriever().invoke("")


def test_langchain_embeddings_are_the_collection_encoder(kit):
    embeddings = kit.langchain_embeddings()
    assert isinstance(embeddings, Embeddings)
    expected = kit.encoder.encode([QUESTION, OTHER_QUESTION])
    np.testing.assert_allclose(embeddings.embed_query(QUESTION), expected[0], atol=1e-5)
    np.testing.assert_allclose(asyncio.run(embeddings.aembed_query(QUESTION)), expected[0], atol=1e-5)
    np.testing.assert_allclose(embeddings.embed_documents([QUESTION, OTHER_QUESTION]), expected, atol=1e-5)
    assert embeddings.embed_documents([]) == []


def test_langchain_embeddings_drive_a_langchain_vector_store(kit):
    texts = [hit.text for hit in kit.search("anything", top_k=20)]
    store = InMemoryVectorStore.from_texts(texts, kit.langchain_embeddings())
    assert store.similarity_search(QUESTION, k=1)[0].page_content == kit.search(QUESTION, top_k=1)[0].text


# LlamaIndex


def test_llamaindex_retriever_nodes_are_the_search_hits(kit):
    retriever = kit.as_llamaindex_retriever(similarity_top_k=3)
    assert isinstance(retriever, LlamaIndexBaseRetriever)
    nodes = retriever.retrieve(QUESTION)
    hits = kit.search(QUESTION, top_k=3)
    assert [n.node.node_id for n in nodes] == [h.id for h in hits]
    assert [n.score for n in nodes] == [h.score for h in hits]
    assert isinstance(nodes[0].node, TextNode)
    assert nodes[0].node.text == hits[0].text
    assert nodes[0].node.metadata == hits[0].metadata


def test_llamaindex_aretrieve_agrees_with_search(kit):
    nodes = asyncio.run(kit.as_llamaindex_retriever(similarity_top_k=2).aretrieve(OTHER_QUESTION))
    assert [n.node.node_id for n in nodes] == [h.id for h in kit.search(OTHER_QUESTION, top_k=2)]


def test_llamaindex_retriever_passes_filters(kit, sources):
    retriever = kit.as_llamaindex_retriever(similarity_top_k=10, filters={"source": sources["astronomy.md"]})
    assert {n.node.metadata["source"] for n in retriever.retrieve(OTHER_QUESTION)} == {
        sources["astronomy.md"]
    }


def test_llamaindex_retriever_and_query_engine_refuse_options_they_do_not_know(kit):
    with pytest.raises(InputError, match=r"unknown option 'top_k' \(did you mean similarity_top_k\?\)"):
        kit.as_llamaindex_retriever(top_k=10)
    # RetrieverQueryEngine.from_args would drop it without a word.
    with pytest.raises(
        InputError, match=r"as_llamaindex_query_engine got unknown option 'k' .*response_mode"
    ):
        kit.as_llamaindex_query_engine(llm=MockLLM(), k=10)


def test_llamaindex_nodes_show_the_llm_where_not_bookkeeping(kit):
    node = kit.as_llamaindex_retriever(similarity_top_k=1).retrieve(QUESTION)[0].node
    shown = node.get_content(MetadataMode.LLM)
    assert node.metadata["source"] in shown
    assert "doc_hash" in node.metadata
    assert "doc_hash" not in shown


def test_llamaindex_query_engine_answers_from_the_retrieved_sections(kit):
    engine = kit.as_llamaindex_query_engine(llm=MockLLM(), similarity_top_k=2)
    assert isinstance(engine, RetrieverQueryEngine)
    response = engine.query(QUESTION)
    hits = kit.search(QUESTION, top_k=2)
    assert [n.node.node_id for n in response.source_nodes] == [h.id for h in hits]
    # MockLLM answers with the prompt it was given: the context LlamaIndex built from our nodes.
    assert "transit method" in str(response) and QUESTION in str(response)
    again = asyncio.run(engine.aquery(QUESTION))
    assert [n.node.node_id for n in again.source_nodes] == [h.id for h in hits]


def test_llamaindex_query_engine_needs_an_llm(kit):
    with pytest.raises(InputError, match="needs an llm"):
        kit.as_llamaindex_query_engine(llm=None)


def test_llamaindex_embedding_is_the_collection_encoder(kit):
    embedding = kit.llamaindex_embedding()
    assert isinstance(embedding, BaseEmbedding)
    assert embedding.model_name == kit.encoder.name
    expected = kit.encoder.encode([QUESTION, OTHER_QUESTION])
    np.testing.assert_allclose(embedding.get_query_embedding(QUESTION), expected[0], atol=1e-5)
    np.testing.assert_allclose(asyncio.run(embedding.aget_query_embedding(QUESTION)), expected[0], atol=1e-5)
    batch = embedding.get_text_embedding_batch([QUESTION, OTHER_QUESTION])
    np.testing.assert_allclose(batch, expected, atol=1e-5)
    async_batch = asyncio.run(embedding.aget_text_embedding_batch([QUESTION, OTHER_QUESTION]))
    np.testing.assert_allclose(async_batch, expected, atol=1e-5)
