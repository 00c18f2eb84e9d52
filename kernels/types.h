/* Structs shared with the host. Each mirrors a numpy dtype in farm/scene/pack.py;
 * every field is a float4 or int4, so both sides agree on the layout. */
#ifndef FARM_TYPES_H
#define FARM_TYPES_H

typedef struct {
    float4 v0;   /* first corner (xyz) */
    float4 e1;   /* v1 - v0 */
    float4 e2;   /* v2 - v0 */
    float4 n;    /* unit geometric normal, front side by counter-clockwise winding */
    int4 info;   /* x: material, y: light index or -1 */
} Triangle;

typedef struct {
    float4 center_radius;  /* xyz: centre, w: radius */
    int4 info;             /* x: material, y: light index or -1 */
} Sphere;

typedef struct {
    float4 diffuse;   /* rgb reflectance */
    float4 emission;  /* rgb radiance leaving the front side */
} Material;

#define LIGHT_TRIANGLE 0
#define LIGHT_SPHERE 1

typedef struct {
    int4 info;    /* x: LIGHT_TRIANGLE or LIGHT_SPHERE, y: primitive index */
    float4 data;  /* x: area, y: probability of choosing this light, z: cumulative probability */
} Light;

typedef struct {
    float4 origin;
    float4 forward;  /* unit viewing direction */
    float4 right;    /* scaled by tan(half fov) along x */
    float4 up;       /* scaled by tan(half fov) along y */
    int4 size;       /* width, height, samples per pixel, max path depth */
    int4 counts;     /* triangles, spheres, lights, seed (as uint) */
} Frame;

#endif
