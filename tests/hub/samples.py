"""Self-written rows and the real column and config names for the repositories in tests/hub/repos.py.

Nothing here is benchmark data: the HumanEval problems and GPQA questions are written for these
tests; only the names (columns, subjects) are the real ones, because the harnesses read by name.
"""

from __future__ import annotations

# cais/mmlu: the 57 subject configs that lm-eval 0.4.13's `mmlu` group reads (its `dataset_name`s).
MMLU_SUBJECTS = (
    "abstract_algebra", "anatomy", "astronomy", "business_ethics", "clinical_knowledge", "college_biology",
    "college_chemistry", "college_computer_science", "college_mathematics", "college_medicine", "college_physics",
    "computer_security", "conceptual_physics", "econometrics", "electrical_engineering", "elementary_mathematics",
    "formal_logic", "global_facts", "high_school_biology", "high_school_chemistry", "high_school_computer_science",
    "high_school_european_history", "high_school_geography", "high_school_government_and_politics",
    "high_school_macroeconomics", "high_school_mathematics", "high_school_microeconomics", "high_school_physics",
    "high_school_psychology", "high_school_statistics", "high_school_us_history", "high_school_world_history",
    "human_aging", "human_sexuality", "international_law", "jurisprudence", "logical_fallacies", "machine_learning",
    "management", "marketing", "medical_genetics", "miscellaneous", "moral_disputes", "moral_scenarios", "nutrition",
    "philosophy", "prehistory", "professional_accounting", "professional_law", "professional_medicine",
    "professional_psychology", "public_relations", "security_studies", "sociology", "us_foreign_policy", "virology",
    "world_religions",
)

_METADATA = "\n\nMETADATA = {\n    'author': 'tests',\n    'dataset': 'test'\n}\n\n\n"

# openai/openai_humaneval: four small problems in HumanEval's format. The prompt ends inside the
# function (signature and docstring), the canonical solution is the indented body, and
# `prompt + canonical_solution + test + f"check({entry_point})"` runs without error.
HUMANEVAL_PROBLEMS: list[dict[str, str]] = [
    {
        "task_id": "HumanEval/0",
        "prompt": 'def add(a: int, b: int) -> int:\n    """Return the sum of a and b.\n    >>> add(2, 3)\n    5\n'
        '    """\n',
        "canonical_solution": "    return a + b\n",
        "test": _METADATA + "def check(candidate):\n    assert candidate(2, 3) == 5\n"
        "    assert candidate(-1, 1) == 0\n",
        "entry_point": "add",
    },
    {
        "task_id": "HumanEval/1",
        "prompt": "def is_palindrome(text: str) -> bool:\n"
        '    """Return True if text reads the same backwards.\n    >>> is_palindrome("level")\n    True\n'
        '    >>> is_palindrome("tests")\n    False\n    """\n',
        "canonical_solution": "    return text == text[::-1]\n",
        "test": _METADATA + "def check(candidate):\n    assert candidate('level') is True\n"
        "    assert candidate('tests') is False\n    assert candidate('') is True\n",
        "entry_point": "is_palindrome",
    },
    {
        "task_id": "HumanEval/2",
        "prompt": "def count_vowels(word: str) -> int:\n"
        '    """Count the vowels (a, e, i, o, u; any case) in word.\n    >>> count_vowels("Banana")\n    3\n'
        '    """\n',
        "canonical_solution": '    return sum(1 for char in word.lower() if char in "aeiou")\n',
        "test": _METADATA + "def check(candidate):\n    assert candidate('Banana') == 3\n"
        "    assert candidate('xyz') == 0\n    assert candidate('AEIOU') == 5\n",
        "entry_point": "count_vowels",
    },
    {
        "task_id": "HumanEval/3",
        "prompt": "from typing import List\n\n\ndef running_max(numbers: List[int]) -> List[int]:\n"
        '    """Return the largest number seen so far at each position.\n'
        "    >>> running_max([1, 3, 2, 5])\n    [1, 3, 3, 5]\n"
        '    """\n',
        "canonical_solution": "    result = []\n    for number in numbers:\n"
        "        result.append(number if not result else max(result[-1], number))\n    return result\n",
        "test": _METADATA + "def check(candidate):\n    assert candidate([1, 3, 2, 5]) == [1, 3, 3, 5]\n"
        "    assert candidate([]) == []\n    assert candidate([4, 1]) == [4, 4]\n",
        "entry_point": "running_max",
    },
]

# Idavidrein/gpqa: the header of its CSV files (every config has the same columns).
GPQA_COLUMNS = (
    "Pre-Revision Question",
    "Pre-Revision Correct Answer",
    "Pre-Revision Incorrect Answer 1",
    "Pre-Revision Incorrect Answer 2",
    "Pre-Revision Incorrect Answer 3",
    "Pre-Revision Explanation",
    "Self-reported question-writing time (minutes)",
    "Question",
    "Correct Answer",
    "Incorrect Answer 1",
    "Incorrect Answer 2",
    "Incorrect Answer 3",
    "Explanation",
    "Revision Comments (from Question Writer)",
    "Subdomain",
    "Writer's Difficulty Estimate",
    "Extra Revised Question",
    "Extra Revised Explanation",
    "Extra Revised Correct Answer",
    "Extra Revised Incorrect Answer 1",
    "Extra Revised Incorrect Answer 2",
    "Extra Revised Incorrect Answer 3",
    "Non-Expert Validator Accuracy",
    "Majority Non-Expert Vals Incorrect",
    "Expert Validator Accuracy",
    "Record ID",
    "High-level domain",
    "Question Writer",
    *(
        f"{name}_EV_{n}"
        for n in (1, 2)
        for name in (
            "Feedback",
            "Validator Revision Suggestion",
            "Is First Validation",
            "Post hoc agreement",
            "Sufficient Expertise?",
            "Understand the question?",
            "Question Difficulty",
            "Validator Answered Correctly",
            "Self-reported time (minutes)",
            "Probability Correct",
            "Manual Correctness Adjustment",
            "Expert Validator",
        )
    ),
    *(
        f"{name}_NEV_{n}"
        for n in (1, 2, 3)
        for name in (
            "Feedback",
            "Validator Answered Correctly",
            "Explanation",
            "Self-reported time (minutes)",
            "Websites visited",
            "Probability Correct",
            "Manual Correctness Adjustment",
            "Non-Expert Validator",
        )
    ),
    "Expert Validator Disagreement Category",
    "Canary String",
)

# Three questions; lm-eval's gpqa tasks read Question, Correct Answer and Incorrect Answer 1-3.
GPQA_ROWS: list[dict[str, str]] = [
    {
        "Question": "A 2 kg block on a frictionless table accelerates at 3 m/s^2. What net force acts on it?",
        "Correct Answer": "6 N",
        "Incorrect Answer 1": "1.5 N",
        "Incorrect Answer 2": "5 N",
        "Incorrect Answer 3": "9 N",
        "Explanation": "Newton's second law: F = m a = 2 kg x 3 m/s^2 = 6 N.",
        "Subdomain": "Physics (general)",
        "High-level domain": "Physics",
    },
    {
        "Question": "How many moles of water molecules are in 36 g of water (molar mass 18 g/mol)?",
        "Correct Answer": "2",
        "Incorrect Answer 1": "1",
        "Incorrect Answer 2": "18",
        "Incorrect Answer 3": "36",
        "Explanation": "n = m / M = 36 g / 18 g/mol = 2 mol.",
        "Subdomain": "Chemistry (general)",
        "High-level domain": "Chemistry",
    },
    {
        "Question": "Which organelle produces most of the ATP in an aerobic eukaryotic cell?",
        "Correct Answer": "the mitochondrion",
        "Incorrect Answer 1": "the ribosome",
        "Incorrect Answer 2": "the Golgi apparatus",
        "Incorrect Answer 3": "the lysosome",
        "Explanation": "Oxidative phosphorylation happens on the inner mitochondrial membrane.",
        "Subdomain": "Molecular Biology",
        "High-level domain": "Biology",
    },
]
