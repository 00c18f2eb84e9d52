/* The environment and light sampling for the paths in lanes (kernels/lanes.h): the
 * arithmetic in lanes, the searches and gathers of the environment's tables and the lights
 * other than triangles and the environment lane by lane (light.h), every lane the same
 * operations, so the same bits at any width. */
#ifndef FARM_LIGHT_LANES_H
#define FARM_LIGHT_LANES_H

#include "light.h"
#include "lanes.h"

/* atan_f, atan2_f, asin_small and acos_f (sampling.h) in lanes: each branch a select. */
inline VF atan_v(VF x) {
    VF a = FABS_V(x);
    VI steep = MASK(a > 2.414213562373095f), middle = ~steep & MASK(a > 0.4142135623730950f);
    VF base = SEL(SEL((VF)(0.0f), (VF)(0.25f * PI_F), middle), (VF)(0.5f * PI_F), steep);
    a = SEL(SEL(a, (a - 1.0f) / (a + 1.0f), middle), -1.0f / a, steep);
    VF z = a * a;
    VF r = base + ((((8.05374449538e-2f * z - 1.38776856032e-1f) * z + 1.99777106478e-1f) * z
                    - 3.33329491539e-1f) * z * a + a);
    return SEL(r, -r, MASK(x < 0.0f));
}

inline VF atan2_v(VF y, VF x) {
    VF a = atan_v(y / x);
    VF r = SEL(SEL(a - PI_F, a + PI_F, MASK(y >= 0.0f)), a, MASK(x > 0.0f));
    VF axis = SEL(SEL((VF)(0.0f), (VF)(-0.5f * PI_F), MASK(y < 0.0f)), (VF)(0.5f * PI_F), MASK(y > 0.0f));
    return SEL(r, axis, MASK(x == 0.0f));
}

inline VF asin_small_v(VF x) {
    VF z = x * x;
    return ((((4.2163199048e-2f * z + 2.4181311049e-2f) * z + 4.5470025998e-2f) * z + 7.4953002686e-2f) * z
            + 1.6666752422e-1f) * z * x + x;
}

inline VF acos_v(VF x) {
    VF low = PI_F - 2.0f * asin_small_v(SQRT_V(0.5f * (1.0f + x)));
    VF high = 2.0f * asin_small_v(SQRT_V(0.5f * (1.0f - x)));
    VF middle = 0.5f * PI_F - asin_small_v(x);
    return SEL(SEL(middle, high, MASK(x > 0.5f)), low, MASK(x < -0.5f));
}

/* Environment direction -> (u, v) of the equirectangular image: u = 0 looks along -z,
 * u = 0.25 along +x; v = 0 looks up (+y). As Mitsuba's envmap. */
inline void env_uv_v(const SceneRef *s, VF3 d, VF *u_out, VF *v_out) {
    __global const Frame *f = s->frame;
    VF3 in_map = vf3(dot3v(splat3(f->env_row0.xyz), d), dot3v(splat3(f->env_row1.xyz), d), dot3v(splat3(f->env_row2.xyz), d));
    VF u = atan2_v(in_map.x, -in_map.z) * (0.5f * INV_PI_F);
    *u_out = SEL(u, u + 1.0f, MASK(u < 0.0f));
    *v_out = acos_v(clamp_v(in_map.y, -1.0f, 1.0f)) * INV_PI_F;
}

/* wrap_index (texture.h) in lanes, for the uniform `mode` */
inline VI wrap_index_v(VI i, int n, int mode) {
    if (mode == WRAP_CLAMP) return SEL(SEL(i, (VI)(n - 1), MASK(i > n - 1)), (VI)(0), MASK(i < 0));
    /* WRAP_REPEAT (the environment's columns): i % n, and n added to a negative remainder.
     * A vector's % is a division a lane (AVX-512 has no integer division); for i in
     * [-n, 2n), where a direction's column always is, the same number by compares. */
    if (!any_lane(MASK(i < -n) | MASK(i >= 2 * n))) return SEL(SEL(i, i - n, MASK(i >= n)), i + n, MASK(i < 0));
    VI m = i % n;
    return SEL(m, m + n, MASK(m < 0));
}

/* The rgb of texel (x, y) of texture t in each lane of `m`, as texel's (loaded lane by lane). */
inline VF3 texel_v(const SceneRef *s, __global const Texture *t, VI x, VI y, VI m) {
    const int channels = t->mode.x;  /* the same in every lane: texel's choice made once */
    const VI at = t->info.y + (y * t->info.z + x) * channels;
    __global const float *texels = s->texels;
    VF3 out = splat3((float3)(0.0f));
    if (channels < 3) {  /* grey: the channel repeated */
        FOR_LANES(l, m) {
            float grey = texels[LI(at, l)];
            set_lane3(&out, l, (float3)(grey, grey, grey));
        }
    } else {
        FOR_LANES(l, m) {
            __global const float *p = texels + LI(at, l);
            set_lane3(&out, l, (float3)(p[0], p[1], p[2]));
        }
    }
    return out;
}

/* The environment's radiance at (u, v) of its map (options.y >= 0: it has one), as
 * Mitsuba's envmap: columns centred at (i + 0.5) / width, wrapping around; the first row at
 * the zenith (v = 0) and the last at the nadir (v = 1), bilinear in between (texture.h's
 * bilinear, the four texels gathered lane by lane). */
inline VF3 env_map_eval_v(const SceneRef *s, VF u, VF v, VI m) {
    __global const Frame *f = s->frame;
    __global const Texture *t = &s->textures[f->options.y];
    const int width = t->info.z, height = t->info.w;
    VF x = u * (float)width - 0.5f, y = v * (float)(height - 1);
    VF fx = FLOOR_V(x), fy = FLOOR_V(y);
    VF ax = x - fx, ay = y - fy;
    VI ix = TO_VI(fx), iy = TO_VI(fy);
    VI x0 = wrap_index_v(ix, width, WRAP_REPEAT), x1 = wrap_index_v(ix + 1, width, WRAP_REPEAT);
    VI y0 = wrap_index_v(iy, height, WRAP_CLAMP), y1 = wrap_index_v(iy + 1, height, WRAP_CLAMP);
    VF3 top = add3(scale3(texel_v(s, t, x0, y0, m), 1.0f - ax), scale3(texel_v(s, t, x1, y0, m), ax));
    VF3 bottom = add3(scale3(texel_v(s, t, x0, y1, m), 1.0f - ax), scale3(texel_v(s, t, x1, y1, m), ax));
    return mul3(add3(scale3(top, 1.0f - ay), scale3(bottom, ay)), splat3(f->env_radiance.xyz));
}

/* Solid angle density of env_sample_v choosing the direction at (u, v) of the map (before
 * the choice of light), for an environment sampled by its map (!env_uniform). */
inline VF env_map_pdf_v(const SceneRef *s, VF u, VF v, VI m) {
    __global const Frame *f = s->frame;
    const int width = f->env.x, height = f->env.y;
    VI col = TO_VI(u * (float)width), row = TO_VI(v * (float)height);
    col = SEL((VI)(width - 1), col, MASK(col < width - 1));  /* min_i */
    row = SEL((VI)(height - 1), row, MASK(row < height - 1));
    VF cos_theta, sin_theta;
    unit_circle_v(0.5f * v, &cos_theta, &sin_theta);  /* sin(pi v) */
    VF table = (VF)(0.0f);
    FOR_LANES(l, m) LF(table, l) = s->env_pdf[LI(row, l) * width + LI(col, l)];
    return SEL(table / (2.0f * PI_F * PI_F * sin_theta), (VF)(0.0f), MASK(sin_theta <= 0.0f));
}

/* The environment's radiance in direction d for the lanes of `m` and, where `pdf` is not
 * NULL, the density with which env_sample_v chooses d: the map's (u, v) found once for both. */
inline VF3 env_eval_v(const SceneRef *s, VF3 d, VF *pdf, VI m) {
    __global const Frame *f = s->frame;
    if (f->options.y < 0) {
        if (pdf) *pdf = (VF)(0.25f * INV_PI_F);
        return splat3(f->env_radiance.xyz);
    }
    VF u, v;
    env_uv_v(s, d, &u, &v);
    if (pdf) *pdf = env_uniform(f) ? (VF)(0.25f * INV_PI_F) : env_map_pdf_v(s, u, v, m);
    return env_map_eval_v(s, u, v, m);
}

/* A direction towards the environment, its density and its radiance: from the map's (u, v)
 * where the map chose it, as Mitsuba's envmap does (the direction's (u, v) found back
 * through atan2 and acos is the same point but for rounding, and cost a sixth of the
 * showcase's time with the density's). The map's searches (search_cdf) lane by lane. */
inline VF3 env_sample_v(const SceneRef *s, VF ux, VF uy, VF *pdf, VF3 *radiance, VI m) {
    __global const Frame *f = s->frame;
    VF3 in_map;
    if (env_uniform(f)) {  /* sample_sphere */
        VF z = 1.0f - 2.0f * ux;
        VF r = SQRT_V(max_v(1.0f - z * z, (VF)(0.0f)));
        VF c, sn;
        unit_circle_v(uy, &c, &sn);
        in_map = vf3(r * c, r * sn, z);
        *pdf = (VF)(0.25f * INV_PI_F);
        VF3 d = add3(add3(scale3(splat3(f->env_row0.xyz), in_map.x), scale3(splat3(f->env_row1.xyz), in_map.y)),
                     scale3(splat3(f->env_row2.xyz), in_map.z));
        *radiance = env_eval_v(s, d, 0, m);
        return d;
    }
    const int width = f->env.x, height = f->env.y;
    const int row_steps = s->env_guide[0], col_steps = s->env_guide[1];
    __global const int *guides = s->env_guide + 2 + row_steps + 1;  /* the rows' own, after the marginal's */
    VI row = (VI)(0), col = (VI)(0);
    VF row_low = (VF)(0.0f), row_high = (VF)(1.0f), col_low = (VF)(0.0f), col_high = (VF)(1.0f), table = (VF)(0.0f);
    FOR_LANES(l, m) {
        int r = search_cdf(s->env_marginal, s->env_guide + 2, row_steps, LF(uy, l));
        __global const float *conditional = s->env_conditional + r * (width + 1);
        int c = search_cdf(conditional, guides + r * (col_steps + 1), col_steps, LF(ux, l));
        LI(row, l) = r;
        LI(col, l) = c;
        LF(row_low, l) = s->env_marginal[r];
        LF(row_high, l) = s->env_marginal[r + 1];
        LF(col_low, l) = conditional[c];
        LF(col_high, l) = conditional[c + 1];
        LF(table, l) = s->env_pdf[r * width + c];
    }
    VF row_width = row_high - row_low, col_width = col_high - col_low;
    VF dv = SEL((VF)(0.5f), (uy - row_low) / row_width, MASK(row_width > 0.0f));
    VF du = SEL((VF)(0.5f), (ux - col_low) / col_width, MASK(col_width > 0.0f));
    VF mu = (TO_VF(col) + clamp_v(du, 0.0f, 1.0f)) / (float)width;
    VF mv = (TO_VF(row) + clamp_v(dv, 0.0f, 1.0f)) / (float)height;
    VF half_v = min_v(0.5f * mv, (VF)(0.49999997f));
    VF u = min_v(mu, (VF)(0.99999994f)), v = 2.0f * half_v;
    VF phi_c, phi_s, theta_c, theta_s;
    unit_circle_v(u, &phi_c, &phi_s);           /* (cos, sin) of 2 pi u */
    unit_circle_v(half_v, &theta_c, &theta_s);  /* (cos, sin) of pi v */
    in_map = vf3(theta_s * phi_s, theta_c, -theta_s * phi_c);
    *pdf = SEL((VF)(0.0f), table / (2.0f * PI_F * PI_F * theta_s), MASK(theta_s > 0.0f));
    /* environment -> world: the transpose of the world -> environment rows */
    VF3 d = add3(add3(scale3(splat3(f->env_row0.xyz), in_map.x), scale3(splat3(f->env_row1.xyz), in_map.y)),
                 scale3(splat3(f->env_row2.xyz), in_map.z));
    *radiance = env_map_eval_v(s, u, v, m);
    return d;
}

/* The light each lane's u_pick chooses by power, for the lanes of `m`: the first whose
 * cumulative probability passes it, by a binary search in lanes (lane by lane its branches
 * were a tenth of the Cornell box's time, mispredicted). */
inline VI pick_light_v(const SceneRef *s, VF u_pick, VI m) {
    VI lo = (VI)(0), hi = (VI)(s->frame->counts.y - 1);
    while (true) {
        VI open = m & MASK(lo < hi);
        if (!any_lane(open)) break;
        VI mid = (lo + hi) >> 1;  /* (lo + hi) / 2: both >= 0 */
        VF passed;
        for (int l = 0; l < LANES; ++l) LF(passed, l) = s->lights[LI(mid, l)].pick.y;
        VI below = open & MASK(u_pick < passed);
        hi = SEL(hi, mid, below);
        lo = SEL(lo, mid + 1, open & ~below);
    }
    return lo;
}

/* A light picked by power (pick_light_v) and a direction towards it from p, for the lanes of
 * `m`; returns those whose sample reaches them with some radiance (the caller's max3(radiance)
 * > 0 included). A triangle light of untextured emission and the environment in lanes, any
 * other lane by lane (sample_picked_light). */
inline VI sample_light_v(const SceneRef *s, VI m, VF3 p, VF u_pick, VF ux, VF uy, VF3 *wi, VF *dist, VF3 *radiance,
                         VF *pdf, VI *delta, VI *prim, VI *instance) {
    VF3 corner = splat3((float3)(0.0f)), edge1 = corner, edge2 = corner, normal = corner, emission = corner;
    VF pmf = (VF)(0.0f), area = (VF)(1.0f);
    VI triangle = (VI)(0), environment = (VI)(0), sampled = (VI)(0);
    *wi = corner;
    *radiance = corner;
    *dist = (VF)(0.0f);
    *pdf = (VF)(1.0f);
    *delta = (VI)(0);
    *prim = (VI)(-1);
    *instance = (VI)(-1);
    VI picked = pick_light_v(s, u_pick, m);
    /* Each light picked, once for all the lanes that picked it: its record read once and
     * spread (lane by lane, the records were most of this function's time). */
    VI todo = m;
    while (any_lane(todo)) {
        const int index = LI(picked, first_set(todo));
        VI same = todo & MASK(picked == (VI)(index));
        todo &= ~same;
        __global const Light *light = &s->lights[index];
        const int kind = light->info.x;
        if (kind == LIGHT_ENVIRONMENT || (kind == LIGHT_TRIANGLE && light->info.w)) {  /* in lanes */
            pmf = SEL(pmf, (VF)(light->pick.x), same);
            *prim = SEL(*prim, (VI)(kind == LIGHT_ENVIRONMENT ? -1 : light->info.y), same);
            *instance = SEL(*instance, (VI)(light->info.z), same);
            if (kind == LIGHT_ENVIRONMENT) {
                environment |= same;
                continue;
            }
            /* a triangle of untextured emission */
            corner = select3(corner, splat3(light->corner.xyz), same);
            edge1 = select3(edge1, splat3(light->edge1.xyz), same);
            edge2 = select3(edge2, splat3(light->edge2.xyz), same);
            normal = select3(normal, splat3(light->direction.xyz), same);
            emission = select3(emission, splat3(light->intensity.xyz), same);
            area = SEL(area, (VF)(light->pick.z), same);
            triangle |= same;
            continue;
        }
        FOR_LANES(l, same) {  /* any other, lane by lane */
            LightSample ls;
            if (!sample_picked_light(s, light, lane3(p, l), (float2)(LF(ux, l), LF(uy, l)), &ls)
                || !(max3(ls.radiance) > 0.0f))
                continue;
            set_lane3(wi, l, ls.wi);
            set_lane3(radiance, l, ls.radiance);
            LF(*dist, l) = ls.dist;
            LF(*pdf, l) = ls.pdf;
            LI(*delta, l) = ls.delta ? -1 : 0;
            LI(*prim, l) = ls.prim;
            LI(*instance, l) = ls.instance;
            LI(sampled, l) = -1;
        }
    }
    if (any_lane(environment)) {
        VF density;
        VF3 light;
        VF3 towards = env_sample_v(s, ux, uy, &density, &light, environment);
        VF environment_pdf = pmf * density;
        VI reached = environment & MASK(environment_pdf > 0.0f) & MASK(max3v(light) > 0.0f);
        *wi = select3(*wi, towards, reached);
        *dist = SEL(*dist, (VF)(INFINITY), reached);
        *pdf = SEL(*pdf, environment_pdf, reached);
        *radiance = select3(*radiance, light, reached);
        sampled |= reached;
    }
    if (!any_lane(triangle)) return sampled;
    /* a triangle: a uniform point (sample_triangle), the direction and density, as
     * sample_picked_light's */
    VF root = SQRT_V(ux);
    VF3 point = add3(add3(corner, scale3(edge1, root * (1.0f - uy))), scale3(edge2, root * uy));
    VF3 to_light = sub3(point, p);
    VF dist2 = dot3v(to_light, to_light);
    VF distance = SQRT_V(dist2);
    VF3 towards = div3(to_light, distance);
    VF cos_light = -dot3v(normal, towards);
    /* reached: not at the light's own point, from its front (emitters shine from their front only) */
    VI reached = triangle & MASK(dist2 > 0.0f) & ~MASK(cos_light <= 0.0f) & MASK(max3v(emission) > 0.0f);
    *wi = select3(*wi, towards, reached);
    *dist = SEL(*dist, distance, reached);
    *pdf = SEL(*pdf, pmf * dist2 / (cos_light * area), reached);
    *radiance = select3(*radiance, emission, reached);
    return sampled | reached;
}

#endif
