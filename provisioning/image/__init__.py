"""Node images: the recipe (``images/recipe.toml``) applied to a base image.

Public API::

    build_image(base, out, wheelhouse=None) -> BuiltImage
    verify_image(path)              # e2fsck -fn + fsck.fat -n, raises on problems
    load_recipe(path=DEFAULT_RECIPE) -> Recipe
"""

from provisioning.image.build import BuiltImage, ImageBuildError, build_image, verify_image
from provisioning.image.recipe import DEFAULT_RECIPE, Recipe, RecipeError, load_recipe

__all__ = ["DEFAULT_RECIPE", "BuiltImage", "ImageBuildError", "Recipe", "RecipeError",
           "build_image", "load_recipe", "verify_image"]
