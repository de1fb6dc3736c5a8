"""The condition language of ``trigger.where`` and its two evaluators (see ``language``)."""

from .language import ConditionCompileError as ConditionCompileError
from .language import ConditionError as ConditionError
from .language import ConditionSet as ConditionSet
from .language import EvaluatorError as EvaluatorError
from .language import check_condition as check_condition
from .language import choose_evaluator as choose_evaluator
from .language import durable_available as durable_available
from .language import quoted as quoted
