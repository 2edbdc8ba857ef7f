/* The English text the random model's tokenizer is trained on: prompts of
 * the kind text-to-video models see, so common prompt words become whole
 * pieces and the rest falls back to shorter ones. */
#include "demo/wan_random_internal.h"

const char *const fy_wan_random_corpus[] = {
    "A red fox runs through fresh snow at the edge of a quiet pine forest, its breath rising in the cold air.",
    "A cat walks slowly along a sunny window sill, then jumps down onto a soft blue carpet.",
    "Waves roll onto a sandy beach at sunset while seagulls fly low over the water.",
    "A small boat drifts across a calm lake in the early morning fog, mountains in the distance.",
    "A busy city street at night, cars passing, neon signs reflecting in the wet road after the rain.",
    "An astronaut floats inside a space station and watches the blue planet turn below.",
    "Two children fly a bright yellow kite on a windy hill under a cloudy sky.",
    "A chef chops fresh green vegetables on a wooden board in a warm and busy kitchen.",
    "Autumn leaves fall from tall trees and cover a narrow path through the park.",
    "A horse gallops across an open field of golden grass as the sun goes down.",
    "A white dog plays with a ball in the garden and runs back to its owner.",
    "Snow falls softly on a small village with lights glowing in every window.",
    "A train crosses a long stone bridge over a deep green valley.",
    "Close up of a flower opening its petals in slow motion, drops of water on the leaves.",
    "A bird sits on a branch and sings, then flies away into the bright morning light.",
    "A woman in a red coat walks through a crowded market full of fruit and colorful fabric.",
    "Fish swim between the corals of a clear blue reef while light moves across the sand.",
    "A lighthouse stands on a rocky coast as storm clouds gather over the dark sea.",
    "A young man rides a bicycle down a long empty road between fields of sunflowers.",
    "Steam rises from a cup of hot coffee on a table next to an open book.",
    "Fireworks burst over a river, their colors reflected in the moving water below.",
    "A bear catches a fish in a fast mountain stream surrounded by tall rocks.",
    "Clouds move quickly over a desert of red sand and high stone towers, time lapse.",
    "An old man plays the violin in a small room lit by a single lamp.",
    "A butterfly lands on a purple flower in a meadow full of tall grass and bees.",
    "Rain drops run down a window while a city of tall buildings glows behind it.",
    "A panda eats bamboo in a green forest, then rolls over on its back.",
    "A sailing ship moves through high waves under a grey sky, cinematic, wide shot.",
    "Children laugh and splash water in a fountain on a hot summer day.",
    "The camera slowly moves forward through a dark cave toward a bright opening.",
    "A group of friends sit around a camp fire and tell stories under the stars.",
    "An eagle glides above snow covered peaks, its wings wide open in the wind.",
    "high quality, detailed, realistic, natural colors, smooth motion, soft light, 4k video.",
    "low quality, blurry, static, overexposed, deformed, bad hands, extra fingers, ugly, text, watermark.",
};

const size_t fy_wan_random_corpus_count = sizeof fy_wan_random_corpus / sizeof fy_wan_random_corpus[0];
