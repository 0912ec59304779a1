import 'reflect-metadata';

export { inject, injectable } from 'tsyringe';
export type { DependencyContainer } from 'tsyringe';
/** The zod instance plugins write their option schemas with, so every schema composes with the kernel's. */
export { z } from 'zod';
export * from './config/catalog';
export * from './config/common-options';
export * from './config/load';
export * from './config/option-group';
export * from './config/prepare';
export * from './config/readers';
export * from './config/schema';
export * from './discovery';
export * from './errors';
export * from './extension-points';
export * from './plugin';
export * from './registry';
export * from './schedule';
export * from './suggest';
export * from './token';
